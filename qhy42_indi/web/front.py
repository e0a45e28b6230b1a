"""The page's HTTP front-end: its routes, the WebSocket feed and what runs beside them.

Routes (Alpaca owns /api/, /management/ and /setup on a shared server):
  /, /web/                        the page
  /web/static/...                 its script and style, served from the package
  /web/ws                         the live feed (JSON messages, pushed on change)
  /web/api/state                  the same data at once, for scripts and tests
  /web/api/command       POST     {"camera", "property", "values"}: a control
  /web/api/preview/<cam>/<seq>/<n>.jpg   the last frame's previews
  /web/api/header/<cam>           the last frame's FITS header (text)
  /web/api/frames/<cam>           the frames in the upload directory (JSON)
  /web/api/frames/<cam>/<name>    one of them, downloaded
Every change goes through the gateway, as an INDI client's would; a read-only address is
refused there (403 here). Work over a millisecond (previews, listings, headers, large JSON)
runs in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, web

from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.front.context import FrontContext
from qhy42_indi.front.http import READ_ONLY, HttpClients
from qhy42_indi.indi.messages import DefVector, IndiMessage, SetVector
from qhy42_indi.indi.properties import InvalidInput
from qhy42_indi.web.commands import BadCommand, checked_values, parse_request
from qhy42_indi.web.events import PageFeed, Pages, TooManyPages
from qhy42_indi.web.frames_dir import FramesDirectory, UnsafeName, upload_directory
from qhy42_indi.web.frames_dir import safe_path as frame_path
from qhy42_indi.web.logbook import LogRing
from qhy42_indi.web.previews import FramePreview, Previewer, fits_header_text
from qhy42_indi.web.state import (
    Glance,
    camera_status,
    clients_now,
    lines_json,
    pending_json,
    samples_json,
)

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
SEND_TIMEOUT_S = 10.0  # a page that takes longer to take one message is closed
COALESCE_S = 0.15  # after a send, changes gather this long before the next
CLOSE_TIMEOUT_S = 2.0  # for the page's answer to our close frame when the daemon stops
FRAMES_CHANGED = frozenset({"CCD_FILE_PATH", "UPLOAD_SETTINGS"})

Json = dict[str, Any]


def _json_error(status: type[web.HTTPException], message: str) -> web.HTTPException:
    return status(text=json.dumps({"ok": False, "message": message}),
                  content_type="application/json")


class WebFront:
    name = "web"

    def __init__(self, context: FrontContext, clients: HttpClients) -> None:
        self._context = context
        self._clients = clients
        self._pages = Pages()
        self._glance = Glance(self._cameras, self._pages.mark)
        self._log = LogRing(lambda: self._pages.mark("log"))
        self._previewers: dict[str, Previewer] = {}
        self._unsubscribe: list[Any] = []
        self._sockets: set[web.WebSocketResponse] = set()
        self._frames_dir = FramesDirectory()
        self.address: tuple[str, int] | None = None  # where the server listens, once started

    # ---- lifecycle ------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._index)
        app.router.add_get("/web", self._index)
        app.router.add_get("/web/", self._index)
        app.router.add_static("/web/static", STATIC_DIR)
        app.router.add_get("/web/ws", self._feed)
        app.router.add_get("/web/api/state", self._state)
        app.router.add_post("/web/api/command", self._command)
        app.router.add_get(r"/web/api/preview/{camera:\d+}/{seq:\d+}/{channel:\d+}.jpg",
                           self._preview)
        app.router.add_get(r"/web/api/header/{camera:\d+}", self._header)
        app.router.add_get(r"/web/api/frames/{camera:\d+}", self._frames)
        app.router.add_get(r"/web/api/frames/{camera:\d+}/{name}", self._download)

    async def start(self, address: tuple[str, int]) -> None:
        self.address = address
        self._log.attach(asyncio.get_running_loop())
        logging.getLogger().addHandler(self._log)
        self._unsubscribe.append(lambda: logging.getLogger().removeHandler(self._log))
        self._unsubscribe.append(self._context.hub.observe(self._observe))
        # The clients list changes when one comes or goes, not only with the next update.
        self._unsubscribe.append(self._context.hub.watch_connections(self._clients_changed))
        self._unsubscribe.append(self._clients.watch(self._clients_changed))
        for device in self._cameras():
            self._follow(device)

    async def stop(self) -> None:
        for stop in reversed(self._unsubscribe):
            stop()
        self._unsubscribe.clear()
        for socket in list(self._sockets):
            await socket.close(code=WSCloseCode.GOING_AWAY, message=b"daemon stopping")
        for previewer in self._previewers.values():
            await previewer.stop()

    # ---- what the daemon says -------------------------------------------------------------

    def _cameras(self) -> list[Qhy42Device]:
        return self._context.gateway.cameras()

    def _follow(self, device: Qhy42Device) -> None:
        if device.name in self._previewers:
            return
        previewer = Previewer(lambda: self._pages.mark("preview"), lambda: len(self._pages) > 0)
        self._previewers[device.name] = previewer
        self._unsubscribe.append(device.frames.subscribe(previewer.offer))

    def _clients_changed(self) -> None:
        self._pages.mark("clients")

    def _observe(self, message: IndiMessage) -> None:
        if isinstance(message, DefVector) and message.device not in self._previewers:
            for device in self._cameras():
                self._follow(device)
        self._glance.observe(message)
        if isinstance(message, SetVector | DefVector) and message.name in FRAMES_CHANGED:
            self._pages.mark("frames")

    # ---- payloads ----------------------------------------------------------------------------

    def _mqtt(self) -> Json | None:
        telemetry = self._context.mqtt
        if telemetry is None:
            return None
        config = self._context.config.mqtt
        return {"kind": "MQTT", "address": f"{config.host}:{config.port}",
                "since": telemetry.connected_since, "read_only": not config.commands,
                "connected": bool(telemetry.connected)}

    def _payload(self, topics: set[str], feed: PageFeed | None, read_only: bool) -> Json:
        cameras = self._cameras()
        cursors = feed.cursors if feed is not None else {}
        payload: Json = {"time": time.time(), "read_only": read_only}
        if "status" in topics or "clients" in topics:
            payload["cameras"] = [camera_status(i, d) for i, d in enumerate(cameras)]
            payload["clients"] = clients_now(self._context.hub, self._clients, self._mqtt())
        if "history" in topics:
            history, pending = {}, {}
            for i, device in enumerate(cameras):
                key = f"history:{device.name}"
                kept = self._glance.history.get(device.name)
                samples = samples_json(kept, cursors.get(key, 0))
                if samples:
                    cursors[key] = int(samples[-1][0] or 0)
                history[str(i)] = samples
                pending[str(i)] = pending_json(kept)
            payload["history"] = history
            payload["history_pending"] = pending
        for topic, ring in (("log", self._log.ring), ("messages", self._glance.messages)):
            if topic in topics:
                lines = ring.since(cursors.get(topic, 0))
                if lines:
                    cursors[topic] = lines[-1].seq
                payload[topic] = lines_json(lines)
        if "preview" in topics:
            payload["previews"] = {
                str(i): self._preview_json(i, self._previewers[d.name].last)
                for i, d in enumerate(cameras)
                if d.name in self._previewers and self._previewers[d.name].last is not None
            }
        if "frames" in topics:
            payload["frames_changed"] = True
        return payload

    def _preview_json(self, camera: int, preview: FramePreview | None) -> Json | None:
        if preview is None:
            return None
        delivered, frame = preview.delivered, preview.delivered.frame
        return {
            "seq": preview.seq,
            "start_utc": delivered.start_utc.isoformat(),
            "time_source": delivered.time_source,
            "frame_type": str(delivered.frame_type),
            "exposure_s": frame.exposure_s,
            "sequence": frame.sequence,
            "read_mode": frame.read_mode.name,
            "bit_depth": frame.bit_depth,
            "cost_ms": round(preview.cost_ms, 1),
            "skipped": self._previewers[delivered.device].skipped,
            "channels": [{
                "label": c.label,
                "url": f"/web/api/preview/{camera}/{preview.seq}/{n}.jpg",
                "width": c.width, "height": c.height,
                "min": c.stats.minimum, "max": c.stats.maximum, "median": c.stats.median,
                "saturated": c.stats.saturated_fraction, "full_scale": c.stats.full_scale,
                "histogram": c.histogram,
            } for n, c in enumerate(preview.channels)],
        }

    # ---- handlers ---------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html",
                                headers={"Cache-Control": "no-cache"})

    async def _state(self, request: web.Request) -> web.Response:
        payload = self._payload(set(_ALL_TOPICS), None, request[READ_ONLY])
        text = await asyncio.to_thread(json.dumps, payload)
        return web.Response(text=text, content_type="application/json")

    async def _feed(self, request: web.Request) -> web.StreamResponse:
        try:
            feed = self._pages.open()
        except TooManyPages as error:
            raise web.HTTPServiceUnavailable(text=f"{error}\n") from error
        socket = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096,
                                       timeout=CLOSE_TIMEOUT_S)
        try:
            await socket.prepare(request)
            self._sockets.add(socket)
            self._pages.mark("clients")  # the others see this page arrive
            for previewer in self._previewers.values():
                previewer.kick()  # the frame that came while nobody looked
            sender = asyncio.create_task(self._send(request, socket, feed))
            try:
                async for _ in socket:
                    pass  # the page sends nothing here: its commands are POSTs
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
        finally:
            self._sockets.discard(socket)
            self._pages.close(feed)
        return socket

    async def _send(self, request: web.Request, socket: web.WebSocketResponse,
                    feed: PageFeed) -> None:
        read_only = request[READ_ONLY]
        try:
            while not socket.closed:
                topics = await feed.next_topics()
                payload = self._payload(topics, feed, read_only)
                text = await asyncio.to_thread(json.dumps, payload)
                await asyncio.wait_for(socket.send_str(text), SEND_TIMEOUT_S)
                await asyncio.sleep(COALESCE_S)
        except TimeoutError:
            # A page that does not read would not read a close frame either: cut it off.
            log.info("web page %s took over %g s to take an update: closed",
                     request.remote, SEND_TIMEOUT_S)
            if request.transport is not None:
                request.transport.abort()
        except ConnectionError as error:
            log.info("web page %s gone: %s", request.remote, error)

    def _camera(self, request: web.Request) -> tuple[int, Qhy42Device]:
        index = int(request.match_info["camera"])
        cameras = self._cameras()
        if index >= len(cameras):
            raise _json_error(web.HTTPNotFound, f"no camera {index}")
        return index, cameras[index]

    async def _command(self, request: web.Request) -> web.Response:
        who = f"web page {request.remote}"
        try:
            camera, name, raw = parse_request(await request.json())
            cameras = self._cameras()
            if camera >= len(cameras):
                raise BadCommand(f"no camera {camera}")
            device = cameras[camera]
            vector = device.props.get(name)
            if vector is None:
                raise BadCommand(f"{device.name} has no {name}")
            values = checked_values(vector, raw)
        except (BadCommand, ValueError, UnicodeDecodeError, InvalidInput) as error:
            raise _json_error(web.HTTPBadRequest, str(error)) from error
        outcome = await self._context.gateway.command(
            device, name, values, read_only=request[READ_ONLY], who=who)
        body = {"ok": outcome.ok, "state": str(outcome.state), "message": outcome.message}
        status = 403 if request[READ_ONLY] else 200
        return web.json_response(body, status=status)

    async def _preview(self, request: web.Request) -> web.Response:
        _, device = self._camera(request)
        previewer = self._previewers.get(device.name)
        last = previewer.last if previewer is not None else None
        seq, channel = int(request.match_info["seq"]), int(request.match_info["channel"])
        if last is None or last.seq != seq or channel >= len(last.channels):
            raise web.HTTPNotFound(text="that preview is gone: a newer frame replaced it\n")
        return web.Response(body=last.channels[channel].jpeg, content_type="image/jpeg",
                            headers={"Cache-Control": "private, max-age=3600"})

    async def _header(self, request: web.Request) -> web.Response:
        _, device = self._camera(request)
        last = device.frames.last  # the last frame delivered, previewed or not
        if last is None:
            raise web.HTTPNotFound(text="no frame yet\n")
        return web.Response(text=await asyncio.to_thread(fits_header_text, last))

    def _upload_dir(self, device: Qhy42Device) -> Path:
        return upload_directory(str(device.props["UPLOAD_SETTINGS"].value("UPLOAD_DIR")))

    async def _frames(self, request: web.Request) -> web.Response:
        index, device = self._camera(request)
        directory = self._upload_dir(device)
        frames = await asyncio.to_thread(self._frames_dir.listing, directory)
        return web.json_response({"camera": index, "directory": str(directory), "frames": [
            {"name": f.name, "size": f.size_bytes, "modified": f.modified_s,
             "frame_type": f.frame_type, "exposure_s": f.exposure_s,
             "url": f"/web/api/frames/{index}/{f.name}"} for f in frames]})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        _, device = self._camera(request)
        name = request.match_info["name"]
        try:
            path = await asyncio.to_thread(frame_path, self._upload_dir(device), name)
        except UnsafeName as error:
            log.warning("web page %s asked for %r: refused", request.remote, name)
            raise web.HTTPForbidden(text=f"{error}\n") from error
        except FileNotFoundError as error:
            raise web.HTTPNotFound(text=f"{error}\n") from error
        return web.FileResponse(path, headers={
            "Content-Disposition": f'attachment; filename="{path.name}"',
            "Content-Type": "application/fits"})


_ALL_TOPICS = ("status", "clients", "history", "log", "messages", "preview", "frames")
