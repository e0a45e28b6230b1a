"""One aiohttp server per address for the HTTP front-ends, with the INDI server's access rules.

Alpaca and the page share a server when they are configured on the same host and port (the
default: both on 11111). Every request is judged by `server.allow` / `server.read_only`, as an
INDI client is when it connects: an address outside `allow` gets 403 and nothing else; a
read-only one is served, with `request[READ_ONLY]` set so that the front-end refuses a change
in its own protocol's terms. HTTP clients are not connections: they are remembered as seen
(address, first and last request, what they spoke), bounded in number and forgotten when idle,
for the page's list of clients. Bodies are bounded (`MAX_BODY_BYTES`): a 50 MB form gets 413.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from qhy42_indi.server.access import AccessControl, Verdict

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
READ_ONLY = web.RequestKey("read_only", bool)
CLIENT_IDLE_S = 300.0  # an HTTP client not heard from this long is no longer listed
MAX_CLIENTS_LISTED = 64


class HttpFront(Protocol):
    """A front-end on an HTTP server: its routes, and what runs beside them."""

    name: str

    def add_routes(self, app: web.Application) -> None: ...

    async def start(self, address: tuple[str, int]) -> None:
        """Begin what runs beside the routes; `address` is where the server listens."""

    async def stop(self) -> None: ...


@dataclass(slots=True)
class HttpClient:
    address: str
    kind: str  # which front-end it spoke to ("Alpaca", "web")
    read_only: bool
    first_seen: float
    last_seen: float


class HttpClients:
    """The HTTP clients heard from recently, by (address, kind)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._clients: dict[tuple[str, str], HttpClient] = {}
        self._watchers: list[Callable[[], None]] = []

    def watch(self, watcher: Callable[[], None]) -> Callable[[], None]:
        """Call `watcher` (at once, without waiting) when a client is heard for the first
        time; returns the way to stop."""
        self._watchers.append(watcher)
        return lambda: self._watchers.remove(watcher)

    def heard(self, address: str, kind: str, read_only: bool) -> None:
        now = self._clock()
        client = self._clients.get((address, kind))
        if client is None:
            self._forget_idle(now)
            if len(self._clients) >= MAX_CLIENTS_LISTED:
                oldest = min(self._clients.values(), key=lambda c: c.last_seen)
                del self._clients[(oldest.address, oldest.kind)]
            self._clients[(address, kind)] = HttpClient(address, kind, read_only, now, now)
            for watcher in list(self._watchers):
                watcher()
        else:
            client.last_seen = now
            client.read_only = read_only

    def recent(self) -> list[HttpClient]:
        self._forget_idle(self._clock())
        return sorted(self._clients.values(), key=lambda c: c.first_seen)

    def _forget_idle(self, now: float) -> None:
        for key, client in list(self._clients.items()):
            if now - client.last_seen > CLIENT_IDLE_S:
                del self._clients[key]


def access_middleware(access: AccessControl, clients: HttpClients,
                      kind_of: Callable[[str], str]) -> Middleware:
    @web.middleware
    async def judge(request: web.Request, handler: Handler) -> web.StreamResponse:
        address = request.remote or ""
        verdict = access.permits(address)
        if verdict is Verdict.NOT_ALLOWED:
            log.warning("HTTP client %s refused: its address is not in server.allow", address)
            raise web.HTTPForbidden(text="this address is not allowed (server.allow)\n")
        read_only = verdict is Verdict.READ_ONLY
        request[READ_ONLY] = read_only
        clients.heard(address, kind_of(request.path), read_only)
        return await handler(request)

    return judge


class HttpServer:
    """One listening address and the front-ends on it."""

    def __init__(self, runner: web.AppRunner, fronts: Sequence[HttpFront]) -> None:
        self._runner = runner
        self.fronts = list(fronts)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._runner.addresses[0][:2]
        return str(host), int(port)

    async def close(self) -> None:
        for front in self.fronts:
            try:
                await front.stop()
            except Exception:  # one front-end's failure must not keep the others running
                log.exception("HTTP front-end %s did not stop cleanly", front.name)
        await self._runner.cleanup()


async def start_http(host: str, port: int, fronts: Sequence[HttpFront], access: AccessControl,
                     clients: HttpClients) -> HttpServer:
    """Serve `fronts` on host:port (port 0: a free one); OSError if it cannot listen."""
    names = {front.name for front in fronts}

    def kind_of(path: str) -> str:
        if "Alpaca" in names and (path.startswith("/api/") or path.startswith("/management")):
            return "Alpaca"
        return "web" if "web" in names else next(iter(names))

    app = web.Application(middlewares=[access_middleware(access, clients, kind_of)],
                          client_max_size=MAX_BODY_BYTES)
    for front in fronts:
        front.add_routes(app)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        server = HttpServer(runner, fronts)
        for front in fronts:
            await front.start(server.address)
    except BaseException:
        await runner.cleanup()
        raise
    log.info("HTTP on %s:%d: %s", *server.address, ", ".join(sorted(names)))
    return server
