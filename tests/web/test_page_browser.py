"""The page in a real browser (headless chromium) against the simulator daemon."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.camera import DEVICE, connect_camera, expose, set_numbers, set_switch
from tests.support.client import IndiClient, is_set
from tests.support.processes import HOST
from tests.web.browser import (
    chromium,
    needs_chromium,
    pixel_spread,
    post,
    script_errors,
    state,
    text_of,
    until,
    watch_text,
    web_daemon,
)

pytestmark = needs_chromium


async def test_page_follows_cooler_and_exposure_from_an_indi_client_and_shows_the_frame(
    tmp_path: Path,
) -> None:
    with web_daemon() as daemon, chromium() as driver:
        await asyncio.to_thread(driver.get, daemon.url)
        await until(driver, "document.getElementById('feed').textContent === 'live'",
                    what="the live feed")
        assert text_of(driver, "v-state") == "Disconnected"
        watch_text(driver, "v-state")
        watch_text(driver, "state")  # the header's badge: state and time left
        async with IndiClient.connect(HOST, daemon.running.port) as client:
            await connect_camera(client)
            await until(driver, "document.getElementById('v-state').textContent === 'Idle'",
                        what="the camera idle after CONNECT")
            await until(driver, "[...document.querySelectorAll('#clients td')]"
                        ".some(td => td.textContent === 'INDI')", what="the INDI client listed")
            before = text_of(driver, "v-temp")
            await set_switch(client, "CCD_COOLER", "COOLER_ON")
            await set_numbers(client, "CCD_TEMPERATURE", CCD_TEMPERATURE_VALUE=-10)
            await until(driver, "document.getElementById('v-cooler').textContent"
                        ".startsWith('on')", what="the cooler on")
            await until(driver, f"document.getElementById('v-temp').textContent !== '{before}'",
                        what="the temperature falling")
            await until(driver, "document.getElementById('v-setpoint').textContent"
                        ".startsWith('-10')", what="the set-point")

            await expose(client, 20.0)  # 1 s of wall time at --time-scale 20
            await until(driver, "window.seen['v-state'].includes('Exposing')",
                        what="the state Exposing")
            await until(driver, "[...document.querySelectorAll('img.preview')]"
                        ".some(img => img.complete && img.naturalWidth > 0)",
                        what="a preview image")
            stats = text_of(driver, "previews")
            assert "median" in stats and "saturated" in stats
            assert "Exposing" in driver.execute_script("return window.seen['v-state']")
            badges = driver.execute_script("return window.seen['state']")
            assert any(b.startswith("Exposing · ") and b.endswith(" s left") for b in badges)

            # A looping preview: the page starts the next exposure when one ends.
            start = len(client.received)
            driver.execute_script(
                "document.getElementById('in-exposure').value = '2';"
                "document.getElementById('in-loop').checked = true;"
                "document.getElementById('b-expose').click();")

            def exposures_ended() -> int:
                return sum(1 for m in client.received[start:]
                           if is_set("CCD_EXPOSURE", "Ok")(m))

            async with asyncio.timeout(20):
                while exposures_ended() < 3:
                    await asyncio.sleep(0.05)
            driver.execute_script("document.getElementById('b-abort').click();")
            await client.wait_for(is_set("CCD_ABORT_EXPOSURE"), start=start)

            # A control of the page reaches the INDI client, as its own command would.
            start = len(client.received)
            driver.execute_script(
                "const i = document.getElementById('in-gain'); i.value = '42';"
                "i.form.requestSubmit();")
            gain = await client.wait_for(is_set("CCD_GAIN"), start=start)
            assert gain.elements[0].value == 42.0  # type: ignore[union-attr]

            # A refusal shows its reason: a gain beyond the limits.
            driver.execute_script(
                "const i = document.getElementById('in-gain'); i.min = ''; i.max = '';"
                "i.value = '1000'; i.form.requestSubmit();")
            await until(driver, "!document.getElementById('notice').hidden",
                        what="the refusal notice")
            assert "CCD_GAIN" in text_of(driver, "notice")

        png = await asyncio.to_thread(driver.get_screenshot_as_png)
        (tmp_path / "page.png").write_bytes(png)
        assert pixel_spread(png) > 10.0, "the screenshot is blank"
        assert state(daemon)["cameras"][0]["gain"] == 42.0
        assert script_errors(driver) == []


async def test_page_reconnects_by_itself_after_the_daemon_restarts(tmp_path: Path) -> None:
    with chromium() as driver:
        with web_daemon(home=tmp_path) as daemon:
            port, web_port = daemon.running.port, daemon.web_port
            await asyncio.to_thread(driver.get, daemon.url)
            await until(driver, "document.getElementById('feed').textContent === 'live'",
                        what="the live feed")
        await until(driver, "document.getElementById('feed').textContent === 'reconnecting'",
                    what="the feed lost")
        with web_daemon(home=tmp_path, port=port, web_port=web_port) as daemon:
            await until(driver, "document.getElementById('feed').textContent === 'live'",
                        timeout_s=15, what="the feed back")
            status, reply = await asyncio.to_thread(
                post, daemon.url + "web/api/command",
                {"camera": 0, "property": "CONNECTION", "values": {"CONNECT": "On"}})
            assert status == 200 and reply["ok"], reply
            await until(driver, "document.getElementById('v-state').textContent === 'Idle'",
                        what="the new daemon's camera")


async def test_read_only_address_sees_disabled_controls_and_is_refused() -> None:
    with web_daemon("--read-only", "127.0.0.0/8") as daemon, chromium() as driver:
        await asyncio.to_thread(driver.get, daemon.url)
        await until(driver, "document.getElementById('feed').textContent === 'live'",
                    what="the live feed")
        await until(driver, "!document.getElementById('read-only').hidden",
                    what="the read-only banner")
        enabled = driver.execute_script(
            "return [...document.querySelectorAll('button, input, select')]"
            ".filter(e => !e.disabled && e.id !== 'b-header' && e.id !== 'camera-select')"
            ".map(e => e.id || e.textContent)")
        assert enabled == []
        for command in ({"property": "CONNECTION", "values": {"CONNECT": "On"}},
                        {"property": "CCD_GAIN", "values": {"GAIN": 10}}):
            status, reply = await asyncio.to_thread(
                post, daemon.url + "web/api/command", {"camera": 0, **command})
            assert status == 403 and not reply["ok"]
            assert "read-only" in reply["message"]
        # Clicking anyway (the button re-enabled by hand) changes nothing either.
        driver.execute_script(
            "const b = document.querySelector('button[data-switch=CONNECT]');"
            "b.disabled = false; b.click();")
        await until(driver, "!document.getElementById('notice').hidden", what="the refusal")
        assert "read-only" in text_of(driver, "notice")
        assert state(daemon)["cameras"][0]["state"] == "Disconnected"
        assert state(daemon)["cameras"][0]["name"] == DEVICE


async def test_the_camera_selector_shows_the_camera_chosen() -> None:
    with web_daemon("--simulators", "2") as daemon, chromium() as driver:
        await asyncio.to_thread(driver.get, daemon.url)
        await until(driver, "document.getElementById('feed').textContent === 'live'",
                    what="the live feed")
        names = await until(
            driver, "!document.getElementById('camera-select').hidden &&"
            " [...document.getElementById('camera-select').options].map(o => o.text)",
            what="a selector with both cameras")
        assert len(names) == 2 and names[0] == DEVICE and names[1] != DEVICE
        assert text_of(driver, "camera-name") == DEVICE
        async with IndiClient.connect(HOST, daemon.running.port) as client:
            await connect_camera(client, device=names[1])
            assert text_of(driver, "v-state") == "Disconnected"  # the first still shown

            from selenium.webdriver.common.by import By
            from selenium.webdriver.support.ui import Select

            picker = Select(driver.find_element(By.ID, "camera-select"))
            await asyncio.to_thread(picker.select_by_index, 1)
            await until(driver, f"document.getElementById('camera-name').textContent"
                        f" === {names[1]!r}", what="the second camera's name")
            await until(driver, "document.getElementById('v-state').textContent === 'Idle'",
                        what="the second camera, connected")
            await asyncio.to_thread(picker.select_by_index, 0)
            await until(driver, "document.getElementById('v-state').textContent"
                        " === 'Disconnected'", what="the first camera again")
        assert script_errors(driver) == []
