"""The Alpaca front-end: its routes on the shared aiohttp server and its discovery responder.

Routes: the device API at /api/v1/camera/{n}/{member} (GET and PUT), the management API
under /management/, and a small /setup page; nothing else, so the web page can share the
server. Device number n is the camera's index in the gateway's list, which grows when a
camera is plugged in later. Every reply to a device or management request carries the
transaction numbers; a read-only address (server.read_only) may GET, and its PUTs are
refused with 0x40B and the reason before anything is looked at.
"""

from __future__ import annotations

import html
import logging
import socket
from typing import Any

from aiohttp import web

from qhy42_indi.alpaca import management
from qhy42_indi.alpaca.camera import AlpacaCamera
from qhy42_indi.alpaca.discovery import Discovery, start_discovery
from qhy42_indi.alpaca.images import IMAGEBYTES_MEDIA_TYPE, json_reply
from qhy42_indi.alpaca.images import imagebytes_header as _imagebytes_header
from qhy42_indi.alpaca.protocol import (
    DRIVER_ERROR,
    INVALID_OPERATION,
    AlpacaError,
    BadRequest,
    Caller,
    Params,
    Transaction,
    Transactions,
    encode,
    envelope,
)
from qhy42_indi.camera.device import Qhy42Device
from qhy42_indi.front.context import FrontContext
from qhy42_indi.front.http import READ_ONLY, HttpClients

log = logging.getLogger(__name__)

DEVICE_PATH = "/api/v1/{device_type}/{device_number}/{member}"
IMAGE_MEMBERS = ("imagearray", "imagearrayvariant")
JSON = "application/json"
WRITE_SLICE_BYTES = 256 * 1024  # copied into the transport's buffer per event-loop turn


class AlpacaFront:
    name = "Alpaca"

    def __init__(self, context: FrontContext, clients: HttpClients) -> None:
        self._context = context
        self._gateway = context.gateway
        self._config = context.config.alpaca
        self._transactions = Transactions()
        self._cameras: dict[str, AlpacaCamera] = {}
        self._discovery: Discovery | None = None

    # ---- HttpFront -----------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(DEVICE_PATH, self._device_get)
        app.router.add_put(DEVICE_PATH, self._device_put)
        app.router.add_get("/management/apiversions", self._api_versions)
        app.router.add_get("/management/v1/description", self._description)
        app.router.add_get("/management/v1/configureddevices", self._configured_devices)
        app.router.add_get("/setup", self._setup)
        app.router.add_get("/setup/v1/{device_type}/{device_number}/setup", self._setup)

    async def start(self, address: tuple[str, int]) -> None:
        """Answer discovery with the port the server listens on (chosen when port is 0)."""
        if not self._config.discovery:
            return
        try:
            self._discovery = await start_discovery(self._config.host,
                                                    self._config.discovery_port,
                                                    address[1])
        except OSError as error:
            log.error("Alpaca discovery cannot listen on UDP %s:%d: %s", self._config.host,
                      self._config.discovery_port, error)

    async def stop(self) -> None:
        if self._discovery is not None:
            self._discovery.close()
            self._discovery = None
        for camera in self._cameras.values():
            camera.close()
        self._cameras.clear()

    # ---- devices -------------------------------------------------------------------------

    def _camera(self, device_type: str, number_text: str) -> AlpacaCamera:
        if device_type != "camera":
            raise BadRequest(f"no device type {device_type!r} here: this server has cameras "
                             "only (the path is lowercase)")
        if not number_text.isdigit():
            raise BadRequest(f"device number {number_text!r} is not a non-negative integer")
        cameras = self._gateway.cameras()
        number = int(number_text)
        if number >= len(cameras):
            raise BadRequest(f"no camera number {number}: {len(cameras)} camera(s) served")
        return self._for(cameras[number])

    def _for(self, device: Qhy42Device) -> AlpacaCamera:
        camera = self._cameras.get(device.name)
        if camera is None or camera.device is not device:
            if camera is not None:
                camera.close()
            camera = self._cameras[device.name] = AlpacaCamera(device, self._gateway)
        return camera

    async def _device_get(self, request: web.Request) -> web.StreamResponse:
        return await self._device_request(request, Params.of_get(request.query), put=False)

    async def _device_put(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
        return await self._device_request(request, Params.of_put(fields), put=True)

    async def _device_request(self, request: web.Request, params: Params, *, put: bool
                              ) -> web.StreamResponse:
        try:
            transaction = self._transactions.begin(params)
            camera = self._camera(request.match_info["device_type"],
                                  request.match_info["device_number"])
            member = request.match_info["member"]
            table = camera.putters if put else camera.getters
            if member not in table and member not in IMAGE_MEMBERS:
                other = camera.getters if put else camera.putters
                if member in other:
                    raise BadRequest(f"{member} cannot be {'set' if put else 'read'} "
                                     f"(use {'GET' if put else 'PUT'})")
                raise BadRequest(f"no member {member!r} (member names are lowercase)")
            if put and member in IMAGE_MEMBERS:
                raise BadRequest(f"{member} cannot be set")
        except BadRequest as error:
            return web.Response(status=400, text=f"{error}\n")
        caller = Caller(f"Alpaca client {request.remote} (ClientID {transaction.client_id})",
                        read_only=request[READ_ONLY])
        try:
            if put and caller.read_only:
                raise AlpacaError(INVALID_OPERATION, f"{request.remote} is read-only "
                                  "(server.read_only): nothing was changed")
            if member not in camera.unconnected:
                camera.require_connected()
            if not put and member in IMAGE_MEMBERS:
                return await self._image(request, camera, transaction)
            if put:
                value = await camera.putters[member](params, caller)
                body = envelope(transaction, value=value, has_value=value is not None)
            else:
                body = envelope(transaction, value=camera.getters[member](), has_value=True)
        except AlpacaError as error:
            body = envelope(transaction, error=error)
        except BadRequest as error:
            return web.Response(status=400, text=f"{error}\n")
        except Exception as error:  # a bug here must not look like a dropped connection
            log.exception("Alpaca %s %s failed", request.method, request.path)
            body = envelope(transaction, error=AlpacaError(DRIVER_ERROR, f"{error}"))
        return _json(body)

    async def _image(self, request: web.Request, camera: AlpacaCamera,
                     transaction: Transaction) -> web.StreamResponse:
        images = camera.image()
        if IMAGEBYTES_MEDIA_TYPE in request.headers.get("Accept", ""):
            data = await images.imagebytes()
            header = _imagebytes_header(images.pixels, transaction)
            return await _stream(request, IMAGEBYTES_MEDIA_TYPE, header, data)
        value = await images.json()
        return await _stream(request, JSON, *json_reply(value, transaction))

    # ---- management ----------------------------------------------------------------------

    def _management(self, request: web.Request, value: Any) -> web.Response:
        try:
            transaction = self._transactions.begin(Params.of_get(request.query))
        except BadRequest as error:
            return web.Response(status=400, text=f"{error}\n")
        return _json(envelope(transaction, value=value, has_value=True))

    async def _api_versions(self, request: web.Request) -> web.Response:
        return self._management(request, management.API_VERSIONS)

    async def _description(self, request: web.Request) -> web.Response:
        return self._management(request, management.description(socket.gethostname()))

    async def _configured_devices(self, request: web.Request) -> web.Response:
        cameras = self._gateway.cameras()
        return self._management(request, management.configured_devices(cameras))

    async def _setup(self, request: web.Request) -> web.Response:
        rows = "".join(f"<li>{number}: {html.escape(device.name)}</li>"
                       for number, device in enumerate(self._gateway.cameras()))
        page = ("<!doctype html><html><head><title>qhy42-indi: Alpaca</title></head><body>"
                "<h1>qhy42-indi: ASCOM Alpaca</h1><p>Cameras served:</p>"
                f"<ul>{rows}</ul><p>Settings live in the daemon's configuration "
                "([alpaca] in config.toml) and in the camera's INDI properties.</p>"
                "</body></html>")
        return web.Response(text=page, content_type="text/html")


def _json(body: dict[str, Any]) -> web.Response:
    return web.Response(body=encode(body), content_type=JSON)


async def _stream(request: web.Request, media_type: str, *parts: bytes | memoryview
                  ) -> web.StreamResponse:
    """Send `parts` one after the other: a large image is never joined into a new copy, and
    goes out a slice at a time, each waiting for the socket, so the transport never has to
    buffer (copy, on the event loop) a whole frame at once."""
    views = [memoryview(part).cast("B") for part in parts]
    response = web.StreamResponse(headers={"Content-Type": media_type})
    response.content_length = sum(view.nbytes for view in views)
    await response.prepare(request)
    try:
        for view in views:
            for start in range(0, view.nbytes, WRITE_SLICE_BYTES):
                await response.write(view[start:start + WRITE_SLICE_BYTES])  # waits for it
        await response.write_eof()
    except ConnectionError:
        # The client went away mid-image (a cancelled download): nothing to answer.
        log.info("Alpaca client %s left during a %s download", request.remote, media_type)
    return response
