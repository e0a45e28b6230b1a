"""Debian's chromium, headless, driven by its chromedriver; and our daemon with the page on.

Selenium is given the system chromedriver and browser explicitly, so Selenium Manager never
downloads anything. The daemon runs as in tests/support/processes.py, with the page on a
free port of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.support.processes import HOST, Running, free_port, running, wait_for_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="Debian's chromium and chromium-driver are not installed "
           "(scripts/install-system-deps.sh installs them)",
)


@dataclass
class WebDaemon:
    running: Running
    web_port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.web_port}/"


def web_daemon_argv(port: int, web_port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "qhy42_indi.cli", "serve", "--host", HOST, "--port", str(port),
            "--no-local-socket", "--web", "--web-port", str(web_port), "--http-host", HOST,
            "--time-scale", "20", "--sim-instant-readout", *extra]


@contextlib.contextmanager
def web_daemon(*extra: str, home: Path | None = None, port: int | None = None,
               web_port: int | None = None) -> Iterator[WebDaemon]:
    port = port or free_port()
    web_port = web_port or free_port()
    with running(web_daemon_argv(port, web_port, *extra), port, home) as proc:
        wait_for_port(web_port, proc.process)
        yield WebDaemon(proc, web_port)


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 1600) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


async def until(driver: Any, script: str, timeout_s: float = 20.0, what: str = "") -> Any:
    """Run `script` (a JS expression) in the page until it is truthy; its value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await asyncio.to_thread(driver.execute_script, f"return ({script});")
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"the page never showed {what or script}")
        await asyncio.sleep(0.1)


def script_errors(driver: Any) -> list[str]:
    """The page's uncaught JavaScript errors so far (failed loads are not script errors)."""
    return [str(entry["message"]) for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]]


def text_of(driver: Any, element_id: str) -> str:
    return str(driver.execute_script(f"return document.getElementById('{element_id}').textContent"))


def post(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            return error.code, dict(json.loads(body))
        except ValueError:  # a refusal in plain text (the access middleware's)
            return error.code, {"ok": False, "message": body.decode(errors="replace")}


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def state(daemon: WebDaemon) -> dict[str, Any]:
    status, body = get(daemon.url + "web/api/state")
    assert status == 200
    return dict(json.loads(body))


def pixel_spread(png: bytes) -> float:
    """The standard deviation of a screenshot's grey levels: 0 for a blank page."""
    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    return float(grey.std())


def watch_text(driver: Any, element_id: str) -> None:
    """Record every text the element shows, in window.seen[element_id]."""
    driver.execute_script(
        "const id = arguments[0]; window.seen = window.seen || {};"
        "const el = document.getElementById(id); window.seen[id] = [el.textContent];"
        "new MutationObserver(() => window.seen[id].push(el.textContent))"
        ".observe(el, {childList: true, characterData: true, subtree: true});", element_id)


