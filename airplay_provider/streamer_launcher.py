"""Streamers forked from a pre-imported parent (`fork_server`) instead of cold interpreters.

`ForkServer.launch()` starts the server at once (a plain child process; its imports run while
the caller goes on); `spawn()` returns a `ForkedStreamer` that behaves, for `StreamerProcess`,
like the `asyncio.subprocess.Process` of ``bin/cliraop ...``: pid, stderr reader, wait,
signals, return code. Without a server, streamers are spawned from ``bin/`` as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from typing import Final, Protocol

from airplay_provider.protocol.errors import AirplayError

READY_TIMEOUT_S: Final = 10.0
SPAWN_TIMEOUT_S: Final = 5.0
CLOSE_TIMEOUT_S: Final = 2.0
ORPHAN_POLL_S: Final = 0.2
MAX_MESSAGE: Final = 1 << 16


class LaunchError(AirplayError):
    """The fork server is not running or refused a request."""


class StreamerHandle(Protocol):
    """What `StreamerProcess` needs from a running streamer (asyncio's Process has it)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    @property
    def stderr(self) -> asyncio.StreamReader | None: ...

    async def wait(self) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


class ForkedStreamer:
    """A streamer forked by the server: not our child, so its exit comes from the server."""

    def __init__(self, pid: int, stderr: asyncio.StreamReader) -> None:
        self.pid = pid
        self.stderr = stderr
        self.returncode: int | None = None
        self._exited = asyncio.Event()

    def exited(self, code: int) -> None:
        """The server reaped it."""
        if self.returncode is None:
            self.returncode = code
        self._exited.set()

    async def wait(self) -> int:
        """Until it exited; its code (−signal when killed)."""
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Signal it while it runs (ProcessLookupError once it is gone)."""
        if self.returncode is not None:
            raise ProcessLookupError(self.pid)
        os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL."""
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """One `fork_server` process and the streamers it forked for us."""

    def __init__(self, *, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(__name__)
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._ready: asyncio.Future[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self._children: dict[int, ForkedStreamer] = {}
        self._early_exits: dict[int, int] = {}
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def launch(self) -> None:
        """Start the server process now (returns at once; `spawn` waits until it is ready)."""
        if self._proc is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "airplay_provider.fork_server", str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=[theirs.fileno()],
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            raise LaunchError(f"cannot start the fork server: {exc}") from exc
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours

    async def _ensure_reader(self) -> None:
        if self._sock is None:
            self.launch()
        if self._reader is None:
            loop = asyncio.get_running_loop()
            self._ready = loop.create_future()
            self._reader = asyncio.create_task(self._read(), name="fork-server")
        assert self._ready is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), READY_TIMEOUT_S)
        except TimeoutError:
            raise LaunchError("the fork server did not become ready") from None

    async def _read(self) -> None:
        assert self._sock is not None
        assert self._ready is not None
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(self._sock, MAX_MESSAGE)
                if not data:
                    break
                self._handle(json.loads(data))
        except (OSError, ValueError) as exc:
            self.logger.warning("fork server connection failed: %s", exc)
        finally:
            if not self._ready.done():
                self._ready.set_exception(LaunchError("the fork server exited"))
                self._ready.exception()
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(LaunchError("the fork server exited"))
            self._waiting.clear()
            orphans = list(self._children.values())
            if orphans:
                await asyncio.gather(*(self._watch_orphan(c) for c in orphans))

    def _handle(self, message: dict[str, object]) -> None:
        if "ready" in message:
            assert self._ready is not None
            if not self._ready.done():
                self._ready.set_result(None)
        elif "exited" in message:
            pid, code = int(str(message["exited"])), int(str(message["code"]))
            child = self._children.pop(pid, None)
            if child is not None:
                child.exited(code)
            else:  # exited before we registered it
                self._early_exits[pid] = code
        elif "id" in message:
            future = self._waiting.pop(int(str(message["id"])), None)
            if future is None or future.done():
                return
            if "pid" in message:
                future.set_result(int(str(message["pid"])))
            else:
                future.set_exception(LaunchError(str(message.get("error"))))

    async def _watch_orphan(self, child: ForkedStreamer) -> None:
        """The server died: notice the child's end by polling (someone else reaps it)."""
        while True:
            try:
                os.kill(child.pid, 0)
            except ProcessLookupError:
                child.exited(-1)
                return
            except PermissionError:
                pass
            await asyncio.sleep(ORPHAN_POLL_S)

    async def spawn(
        self,
        program: str,
        argv: list[str],
        stdin_fd: int,
        *,
        limit: int,
        pass_fd: int | None = None,
    ) -> ForkedStreamer:
        """Fork `program` ("cliraop"/"cliap2") with `argv`, reading audio from `stdin_fd`.

        `pass_fd` (the streamer's secrets pipe) appears in the child under the same number,
        as ``subprocess``'s ``pass_fds`` would give it.
        """
        await self._ensure_reader()
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        stderr_r, stderr_w = os.pipe()
        try:
            async with self._lock:
                request_id = next(self._ids)
                future: asyncio.Future[int] = loop.create_future()
                self._waiting[request_id] = future
                request = {"id": request_id, "program": program, "argv": argv, "pass_fd": pass_fd}
                fds = [stdin_fd, stderr_w] if pass_fd is None else [stdin_fd, stderr_w, pass_fd]
                try:
                    socket.send_fds(self._sock, [json.dumps(request).encode()], fds)
                except OSError as exc:
                    self._waiting.pop(request_id, None)
                    raise LaunchError(f"fork server: {exc}") from exc
            pid = await asyncio.wait_for(future, SPAWN_TIMEOUT_S)
        except BaseException:
            os.close(stderr_r)
            raise
        finally:
            os.close(stderr_w)
        reader = asyncio.StreamReader(limit=limit)
        pipe = os.fdopen(stderr_r, "rb", buffering=0)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        child = ForkedStreamer(pid, reader)
        early = self._early_exits.pop(pid, None)
        if early is not None:
            child.exited(early)
        else:
            self._children[pid] = child
        return child

    def close_now(self) -> None:
        """`close` without an event loop (idempotent): close the socket, reap the server."""
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
        self._reader = None
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.wait(CLOSE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    async def close(self) -> None:
        """Stop the server (its running children are stopped by their owners, not here)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            await asyncio.to_thread(proc.wait, CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)
