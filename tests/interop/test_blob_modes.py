"""enableBLOB over real TCP: each client gets what its mode says, from the same exposure."""

from __future__ import annotations

import contextlib

from tests.support.camera import DEVICE, blobs, connect_camera, expose, set_numbers
from tests.support.client import IndiClient, is_blob, is_set
from tests.support.processes import HOST, daemon

MODES = {  # enableBLOB sent: (gets the BLOB, gets other traffic)
    "none sent": (None, False, True),
    "Never": ("<enableBLOB device='{d}'>Never</enableBLOB>", False, True),
    "Also": ("<enableBLOB device='{d}'>Also</enableBLOB>", True, True),
    "Only": ("<enableBLOB device='{d}'>Only</enableBLOB>", True, False),
    "Only CCD1": ("<enableBLOB device='{d}' name='CCD1'>Only</enableBLOB>", True, True),
}


async def test_clients_with_different_blob_modes_each_get_what_their_mode_says() -> None:
    with daemon() as server:
        async with contextlib.AsyncExitStack() as stack:
            commander = await stack.enter_async_context(IndiClient.connect(HOST, server.port))
            await connect_camera(commander)
            await set_numbers(commander, "CCD_FRAME", X=0, Y=0, WIDTH=64, HEIGHT=32)
            watchers = {}
            for label, (request, _, _) in MODES.items():
                client = await stack.enter_async_context(IndiClient.connect(HOST, server.port))
                await client.send(f"<getProperties version='1.7' device='{DEVICE}'/>")
                if request:
                    await client.send(request.format(d=DEVICE))
                await client.send("<pingRequest uid='set'/>")
                await client.wait_for(lambda m: type(m).__name__ == "PingReply")
                watchers[label] = (client, len(client.received))
            await expose(commander, 0.1)
            for label, (client, start) in watchers.items():
                _, gets_blob, gets_other = MODES[label]
                if gets_blob:
                    await client.wait_for(is_blob, start=start)
                else:
                    await client.wait_quiet(0.5)
                got = client.received[start:]
                assert bool(blobs(got)) is gets_blob, label
                assert any(is_set("CCD_EXPOSURE")(m) for m in got) is gets_other, label
            # the same frame, byte for byte, for every client that took it
            payloads = {bytes(blobs(c.received[s:])[0].data_b64)
                        for label, (c, s) in watchers.items() if MODES[label][1]}
            assert len(payloads) == 1
