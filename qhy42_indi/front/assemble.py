"""Start the configured HTTP front-ends: Alpaca and the page, grouped by the address they
listen on (one server when they share it), beside the INDI service.

A front-end that cannot listen (the port is taken) is logged and left out: INDI still serves,
as when the local socket cannot be had. aiohttp and the front-ends are imported only when one
is enabled (in a thread), so an indiserver drop-in starts as fast as before.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import TYPE_CHECKING

from qhy42_indi.front.context import FrontContext

if TYPE_CHECKING:
    from qhy42_indi.front.http import HttpServer

log = logging.getLogger(__name__)


class Fronts:
    """The running HTTP servers; close() stops them all."""

    def __init__(self) -> None:
        self.servers: list[HttpServer] = []

    async def start(self, context: FrontContext) -> None:
        config = context.config
        if not (config.alpaca.enabled or config.web.enabled):
            return
        # Importing aiohttp takes a quarter of a second here (it builds its SSL contexts):
        # done in a thread, the loop goes on serving INDI meanwhile.
        wanted = ["qhy42_indi.front.http"]
        wanted += ["qhy42_indi.alpaca.front"] if config.alpaca.enabled else []
        wanted += ["qhy42_indi.web.front"] if config.web.enabled else []
        await asyncio.to_thread(lambda: [importlib.import_module(name) for name in wanted])
        from qhy42_indi.front.http import HttpClients, HttpFront, start_http

        clients = HttpClients()
        by_address: dict[tuple[str, int], list[HttpFront]] = {}
        if config.alpaca.enabled:
            from qhy42_indi.alpaca.front import AlpacaFront

            address = (config.alpaca.host, config.alpaca.port)
            by_address.setdefault(address, []).append(AlpacaFront(context, clients))
        if config.web.enabled:
            from qhy42_indi.web.front import WebFront

            address = (config.web.host, config.web.port)
            by_address.setdefault(address, []).append(WebFront(context, clients))
        for (host, port), fronts in by_address.items():
            names = ", ".join(front.name for front in fronts)
            try:
                server = await start_http(host, port, fronts, context.access, clients)
            except OSError as error:
                log.error("cannot serve %s on %s:%d: %s", names, host, port, error)
                continue
            self.servers.append(server)

    def addresses(self) -> list[tuple[str, int]]:
        return [server.address for server in self.servers]

    async def close(self) -> None:
        for server in self.servers:
            await server.close()
        self.servers.clear()
