"""DEBUG, DEBUG_LEVEL, LOGGING_LEVEL and LOG_OUTPUT as in a libindi driver, over the wire:
defined while DEBUG is on, the driver's debug log to the client and to the log file where
libindi puts it, session messages held back when the client turns them off."""

from __future__ import annotations

from pathlib import Path

from qhy42_indi.indi.messages import DefVector, DelProperty, Message
from tests.support.camera import answered, connect_camera, expose, set_numbers, set_switch
from tests.support.client import IndiClient
from tests.support.processes import HOST, daemon

DRIVER = "indi_qhy42_ccd"


def messages(client: IndiClient, start: int, tag: str) -> list[str]:
    return [m.message or "" for m in client.received[start:]
            if isinstance(m, Message) and (m.message or "").startswith(f"[{tag}]")]


async def test_debug_defines_the_logger_properties_and_sends_the_debug_log(
    tmp_path: Path,
) -> None:
    with daemon(home=tmp_path) as server:
        async with IndiClient.connect(HOST, server.port) as client:
            await connect_camera(client)
            await answered(client, "CCD_FRAME", await set_numbers(
                client, "CCD_FRAME", X=0, Y=0, WIDTH=32, HEIGHT=32))
            quiet = await expose(client, 0.01)
            assert not messages(client, quiet, "DEBUG")  # DEBUG off: no debug log

            on = await set_switch(client, "DEBUG", "ENABLE")
            await answered(client, "DEBUG", on)
            defined = {m.name for m in client.received[on:] if isinstance(m, DefVector)}
            assert defined >= {"DEBUG_LEVEL", "LOGGING_LEVEL", "LOG_OUTPUT"}  # before the reply
            await answered(client, "DEBUG_LEVEL", await set_switch(
                client, "DEBUG_LEVEL", "DBG_DEBUG"))
            await answered(client, "LOGGING_LEVEL", await set_switch(
                client, "LOGGING_LEVEL", "LOG_DEBUG"))
            await answered(client, "LOG_OUTPUT", await set_switch(
                client, "LOG_OUTPUT", "FILE_DEBUG"))
            loud = await expose(client, 0.01)
            debug = messages(client, loud, "DEBUG")
            assert any("asked" in text and "taken" in text for text in debug), debug

            await answered(client, "DEBUG_LEVEL", await set_switch(
                client, "DEBUG_LEVEL", "DBG_SESSION", state="Off"))
            held = await set_numbers(client, "CCD_FRAME", X=0, Y=0, WIDTH=2048, HEIGHT=2048)
            await answered(client, "CCD_FRAME", held)
            await answered(client, "CONFIG_PROCESS", await set_switch(
                client, "CONFIG_PROCESS", "CONFIG_SAVE"))
            assert not messages(client, held, "INFO")  # "Configuration saved" held back

            off = await set_switch(client, "DEBUG", "DISABLE")
            await answered(client, "DEBUG", off)
            deleted = {m.name for m in client.received[off:] if isinstance(m, DelProperty)}
            assert deleted >= {"DEBUG_LEVEL", "LOGGING_LEVEL", "LOG_OUTPUT"}
    logs = list((tmp_path / ".indi" / "logs").glob(f"*/{DRIVER}/{DRIVER}_*.log"))
    assert len(logs) == 1, logs
    lines = logs[0].read_text().splitlines()
    assert any(line.startswith("DEBUG\t") and " sec\t: " in line and "taken" in line
               for line in lines), lines[:20]
    # The daemon's own log (stderr) kept its INFO level meanwhile.
    assert not any(" DEBUG qhy42_indi" in line for line in server.log().splitlines())
