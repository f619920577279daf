"""The receiver lab's children: each in its own process group, logged to files, stopped
(SIGTERM, then SIGKILL) on exit, and killed at interpreter exit if a lab never stopped them.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from airplay_provider.protocol.errors import AirplayError

STOP_TIMEOUT = 3.0
POLL_INTERVAL = 0.02

# Process groups still alive; killed at interpreter exit if a lab never reached __aexit__.
_LIVE_GROUPS: set[int] = set()


@atexit.register
def _kill_leftovers() -> None:
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    _LIVE_GROUPS.clear()


class ReceiverLabError(AirplayError, RuntimeError):
    """The lab could not start, or a receiver failed."""


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def _poll_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` until true (→ True) or ``timeout`` seconds passed (→ False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL_INTERVAL)


class LabProcess:
    """A child in its own process group; stdout (or everything) goes to files."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        env: dict[str, str],
        stdout_path: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        setpriv = shutil.which("setpriv")  # the child dies with us even if we are SIGKILLed
        prefix = [setpriv, "--pdeathsig", "KILL"] if setpriv else []
        with contextlib.ExitStack() as files:
            log = files.enter_context(open(log_path, "ab"))
            out = files.enter_context(open(stdout_path, "ab")) if stdout_path else log
            self.popen = subprocess.Popen(
                [*prefix, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=log if stdout_path else subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        _LIVE_GROUPS.add(self.pid)

    def exited(self) -> bool:
        """True once the leader exited (not reaped yet, so its pgid stays reserved)."""
        if self.popen.returncode is not None:
            return True
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def error(self, what: str) -> ReceiverLabError:
        return ReceiverLabError(f"{self.name} {what}; log tail:\n{_tail(self.log_path)}")

    async def wait_for_log(self, marker: str, timeout: float) -> None:
        """Wait until ``marker`` appears in the log; raise if the process dies first."""
        found = await _poll_until(
            lambda: self.exited() or marker in self.log_path.read_text(errors="replace"), timeout
        )
        if self.exited():
            raise self.error(f"exited during start-up (status {self.popen.poll()})")
        if not found:
            raise self.error(f"not ready after {timeout:.1f} s")

    async def stop(self) -> None:
        """SIGTERM the group, wait, SIGKILL what is left of it, reap the leader."""
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            await _poll_until(self.exited, STOP_TIMEOUT)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            await _poll_until(lambda: self.popen.poll() is not None, STOP_TIMEOUT)
        _LIVE_GROUPS.discard(self.pid)
