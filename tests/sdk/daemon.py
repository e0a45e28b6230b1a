"""Our daemon on the SDK backend (`--backend sdk`) over the stub libqhyccd, on a free port."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.sdk.stub import build_stub
from tests.support.processes import Running, daemon_argv, free_port, running

FOREIGN_THREAD_NOTE = "called from a second thread"


@contextlib.contextmanager
def sdk_daemon(*extra: str, env: dict[str, str] | None = None,
               home: Path | None = None) -> Iterator[Running]:
    """The daemon with QHY42_LIBQHYCCD pointing at the stub. The stub prints a line for any
    SDK call from a second thread; the daemon's log must not hold one when it stops."""
    stub = build_stub()
    port = free_port()
    argv = daemon_argv(port, "--backend", "sdk", "--no-local-socket", *extra)
    environment = {"QHY42_LIBQHYCCD": str(stub), **(env or {})}
    with contextlib.ExitStack() as stack:
        if home is None:
            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="qhy42-sdk-")))
        with running(argv, port, home, environment) as proc:
            yield proc
        assert FOREIGN_THREAD_NOTE not in proc.log(), proc.log()
