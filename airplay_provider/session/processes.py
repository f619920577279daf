"""The streamer processes (`bin/cliraop`, `bin/cliap2`) behind one interface.

A `StreamTarget` says where one member streams to; `build_argv` turns it into the command line
of the right streamer (RAOP or AirPlay 2, same contract: docs/ARCHITECTURE.md §3). `StreamerProcess`
spawns it with a given stdin, follows its `[STATUS]` lines, writes its command FIFO (retrying
while the streamer has not opened it yet, reopening after EPIPE) and stops it without leaving
a process or FIFO behind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

from airplay_provider.protocol.ap2_buffered import StreamChoice
from airplay_provider.protocol.streamer_status import (
    Connected,
    Error,
    ErrorCode,
    Exit,
    StartFields,
    StatusEvent,
    StreamerError,
    parse_status,
)
from airplay_provider.protocol.txt import StreamingProtocol
from airplay_provider.streamer.secret_input import encode_secrets
from airplay_provider.streamer_launcher import ForkServer, LaunchError, StreamerHandle

BIN_DIR: Final = Path(__file__).resolve().parents[2] / "bin"
FIFO_OPEN_ATTEMPTS: Final = 20
FIFO_RETRY_S: Final = 0.05
STOP_GRACE_S: Final = 2.0
KILL_WAIT_S: Final = 2.0
LOG_TAIL_LINES: Final = 40
STATUS_HISTORY: Final = 256  # recent [STATUS] events kept for diagnostics
STDERR_LINE_LIMIT: Final = 1 << 20

StatusCallback = Callable[["StreamerProcess", StatusEvent], None]
E = TypeVar("E", bound=StatusEvent)


@dataclass(frozen=True)
class StreamTarget:
    """One receiver as a session member: address, protocol and per-player options."""

    name: str
    host: str
    port: int
    protocol: StreamingProtocol = StreamingProtocol.RAOP
    volume: int | None = None
    latency_ms: int = 1000
    sync_adjust_ms: int = 0
    encrypt: bool = True
    alac: bool = False  # compressed ALAC: cliraop "-alac", cliap2 "--alac on"
    ap2_stream_type: StreamChoice = "auto"  # cliap2 --stream-type (auto: not passed)
    hires: bool = False  # the player's hi-res opt-in (the session decides `bits`/`rate`)
    bits: int = 16  # what stdin carries: s16le or s24le (cliap2 --bits, 24: buffered only)
    rate: int = 44100  # cliap2 --rate
    txt: Mapping[str, str] = field(default_factory=dict)
    password: str | None = None
    secret: str | None = None
    dacp_id: str | None = None
    active_remote: int | None = None
    udn: str | None = None
    hostname: str | None = None
    player_id: str | None = None
    extra_args: tuple[str, ...] = ()
    #: The receiver's other addresses, best first, tried when `host` does not answer.
    fallback_hosts: tuple[str, ...] = ()
    #: AirPlay 2 clock: "auto" (PTP when advertised, NTP when it stalls), "ptp" or "ntp".
    timing: str = "auto"

    @property
    def key(self) -> str:
        """Unique key of this member within a session (player id, else name)."""
        return self.player_id or self.name


def streamer_binary(protocol: StreamingProtocol) -> Path:
    """Path of the launcher for `protocol` in this checkout / installed package."""
    return BIN_DIR / ("cliap2" if protocol is StreamingProtocol.AIRPLAY2 else "cliraop")


def streamer_secrets(target: StreamTarget) -> dict[str, str | None]:
    """What must not appear on the streamer's command line, in `secret_input` keys."""
    token = str(target.active_remote) if target.active_remote is not None else None
    if target.protocol is StreamingProtocol.AIRPLAY2:
        auth = target.secret if target.secret and len(target.secret) == 192 else None
        return {"auth": auth, "active_remote": token}
    secret = target.secret.split(":", 1)[-1] if target.secret else None
    return {"password": target.password, "secret": secret, "active_remote": token}


def build_raop_argv(
    target: StreamTarget, ntpstart: int, cmdpipe: str, *, secrets_fd: int | None = None
) -> list[str]:
    """`cliraop` arguments in Music Assistant's order (ARCHITECTURE.md §3a), without the binary.

    With `secrets_fd`, the password, pairing secret and Active-Remote token are left out and
    the streamer reads them from that inherited fd instead (nothing secret in its cmdline).
    """
    if (target.bits, target.rate) != (16, 44100):
        raise ValueError(f"cliraop plays 16-bit/44.1 kHz only, not {target.bits}/{target.rate}")
    argv = ["-ntpstart", str(ntpstart), "-port", str(target.port)]
    argv += ["-latency", str(target.latency_ms)]
    if target.volume is not None:
        argv += ["-volume", str(max(0, min(100, target.volume)))]
    if target.encrypt:
        argv.append("-encrypt")
    if target.alac:
        argv.append("-alac")
    for key in ("et", "md", "am", "pk", "pw"):
        value = target.txt.get(key, "")
        if value:
            argv += [f"-{key}", value]
    secrets = streamer_secrets(target)
    if secrets_fd is not None:
        argv += ["-secretsfd", str(secrets_fd)]
    else:
        if secrets["password"]:
            argv += ["-password", secrets["password"]]
        if secrets["secret"]:
            argv += ["-secret", secrets["secret"]]
    if target.dacp_id:
        argv += ["-dacp", target.dacp_id]
    if secrets_fd is None and secrets["active_remote"]:
        argv += ["-activeremote", secrets["active_remote"]]
    argv += ["-cmdpipe", cmdpipe]
    if target.udn:
        argv += ["-udn", target.udn]
    if target.fallback_hosts:
        argv += ["-fallback", ",".join(target.fallback_hosts)]
    return [*argv, *target.extra_args, target.host, "-"]


def build_ap2_argv(
    target: StreamTarget, ntpstart: int, cmdpipe: str, *, secrets_fd: int | None = None
) -> list[str]:
    """`cliap2` arguments (docs/ARCHITECTURE.md §3b), without the binary; secrets as for cliraop."""
    txt = "".join(f'"{key}={value}" ' for key, value in target.txt.items() if "=" not in value)
    argv = [
        "--name",
        target.name,
        "--hostname",
        target.hostname or target.host,
        "--address",
        target.host,
        "--port",
        str(target.port),
        "--txt",
        txt,
        "--ntpstart",
        str(ntpstart),
        "--latency",
        str(target.latency_ms),
        "--pipe",
        "-",
        "--command_pipe",
        cmdpipe,
    ]
    if target.volume is not None:
        argv += ["--volume", str(max(0, min(100, target.volume)))]
    if target.dacp_id:
        argv += ["--dacp_id", target.dacp_id]
    if target.alac:
        argv += ["--alac", "on"]
    if (target.bits, target.rate) != (16, 44100):  # (16/44.1: the arguments cliap2 always had)
        # With `auto`, cliap2 decides from the receiver's `/info` and refuses 24-bit on a
        # stream that turns out realtime (`format_unsupported`): the session retries at 16-bit.
        argv += ["--bits", str(target.bits), "--rate", str(target.rate)]
    if target.ap2_stream_type != "auto":
        argv += ["--stream-type", target.ap2_stream_type]
    secrets = streamer_secrets(target)
    if secrets_fd is not None:
        argv += ["--secrets_fd", str(secrets_fd)]
    elif secrets["auth"]:
        argv += ["--auth", secrets["auth"]]
    if target.fallback_hosts:
        argv += ["--fallback_address", ",".join(target.fallback_hosts)]
    if target.timing != "auto":
        argv += ["--timing", target.timing]
    return [*argv, *target.extra_args]


def build_args(
    target: StreamTarget, ntpstart: int, cmdpipe: str, *, secrets_fd: int | None = None
) -> list[str]:
    """The streamer's arguments (without interpreter and program) for the target's protocol."""
    if target.protocol is StreamingProtocol.AIRPLAY2:
        return build_ap2_argv(target, ntpstart, cmdpipe, secrets_fd=secrets_fd)
    return build_raop_argv(target, ntpstart, cmdpipe, secrets_fd=secrets_fd)


def build_argv(
    target: StreamTarget, ntpstart: int, cmdpipe: str, *, secrets_fd: int | None = None
) -> list[str]:
    """Full command line (interpreter, launcher, arguments) for the target's protocol.

    The `bin/` launchers exist in a checkout or an editable install; a wheel installed into
    another environment (Music Assistant's) has no `bin/`, so the module is run with ``-m``.
    """
    binary = streamer_binary(target.protocol)
    args = build_args(target, ntpstart, cmdpipe, secrets_fd=secrets_fd)
    if binary.is_file():
        return [sys.executable, str(binary), *args]
    return [sys.executable, "-m", f"airplay_provider.streamer.{binary.name}", *args]


def secrets_pipe(target: StreamTarget) -> int | None:
    """The read end of a pipe already holding the target's secrets (None: it has none).

    Written whole before the streamer starts (far below a pipe's 64 KiB buffer) and closed,
    so the streamer reads it to its end; the caller passes it on and closes its copy.
    """
    data = encode_secrets(streamer_secrets(target))
    if not data:
        return None
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, data)
    finally:
        os.close(write_end)
    return read_end


class CommandPipe:
    """Writes `KEY=VALUE` lines into a streamer's FIFO (non-blocking, never on a closed pipe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = asyncio.Lock()

    async def send(self, *lines: str) -> bool:
        """Write the lines in one write; False when no streamer reads the FIFO."""
        payload = "".join(line.replace("\n", " ") + "\n" for line in lines).encode()
        async with self._lock:
            for _ in range(2):  # a second try after EPIPE, with a fresh descriptor
                fd = await self._open()
                if fd is None:
                    return False
                try:
                    await self._write_all(fd, payload)
                except BrokenPipeError:
                    self.close()
                    continue
                except OSError:
                    self.close()
                    return False
                return True
        return False

    async def _open(self) -> int | None:
        if self._fd is not None:
            return self._fd
        for _ in range(FIFO_OPEN_ATTEMPTS):
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno not in (errno.ENXIO, errno.ENOENT):
                    return None
                await asyncio.sleep(FIFO_RETRY_S)
            else:
                return self._fd
        return None

    @staticmethod
    async def _write_all(fd: int, payload: bytes) -> None:
        view = memoryview(payload)
        for _ in range(FIFO_OPEN_ATTEMPTS):
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                await asyncio.sleep(FIFO_RETRY_S)
                continue
            view = view[written:]
            if not view:
                return
        raise OSError(errno.EAGAIN, "command FIFO stays full")

    def close(self) -> None:
        """Close the write descriptor (the streamer removes the FIFO itself)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


class StreamerProcess:
    """One running streamer: spawn, `[STATUS]` tracking, commands, stop."""

    def __init__(
        self,
        target: StreamTarget,
        cmdpipe: Path,
        *,
        on_status: StatusCallback | None = None,
        logger: logging.Logger | None = None,
        launcher: ForkServer | None = None,
    ) -> None:
        self.target = target
        self.launcher = launcher
        self.cmdpipe = cmdpipe
        self.commands = CommandPipe(cmdpipe)
        self.on_status = on_status
        self.logger = logger or logging.getLogger(__name__)
        # Bounded: a stream reports `elapsed` every second for as long as music plays (days).
        self.statuses: collections.deque[tuple[float, StatusEvent]] = collections.deque(
            maxlen=STATUS_HISTORY
        )
        self._latest: dict[type, StatusEvent] = {}  # by concrete event class
        self.first_start: StartFields | None = None
        self.log_tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self.spawned_at = 0.0
        self.connected_at: float | None = None
        self.returncode: int | None = None
        self._proc: StreamerHandle | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connected: asyncio.Future[Connected] | None = None
        self._exited = asyncio.Event()

    @property
    def pid(self) -> int | None:
        """Process id while spawned."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Spawned and not exited yet."""
        return self._proc is not None and not self._exited.is_set()

    def last(self, kind: type[E]) -> E | None:
        """The latest status event of type `kind`, if any."""
        event = self._latest.get(kind)
        if isinstance(event, kind):
            return event
        for _, recent in reversed(self.statuses):  # `kind` is a base class (StartFields)
            if isinstance(recent, kind):
                return recent
        return None

    def record(self, line: str) -> None:
        """Take one stderr line: kept in the log tail; a `[STATUS]` line is acted on."""
        self.log_tail.append(line)
        event = parse_status(line)
        if event is None:
            self.logger.debug("%s: %s", self.target.name, line)
            return
        self.statuses.append((time.monotonic(), event))
        self._latest[type(event)] = event
        if self.first_start is None and isinstance(event, StartFields):
            self.first_start = event
        self._on_event(event)

    async def spawn(self, ntpstart: int, stdin_fd: int) -> None:
        """Start the streamer reading audio from `stdin_fd` (the caller closes its copy).

        Its secrets (password, credentials, Active-Remote token) go through an inherited pipe,
        never its command line, whichever way it is started.
        """
        loop = asyncio.get_running_loop()
        self._connected = loop.create_future()
        self.spawned_at = time.monotonic()
        self._proc = None
        secrets_fd = secrets_pipe(self.target)
        try:
            argv = build_argv(self.target, ntpstart, str(self.cmdpipe), secrets_fd=secrets_fd)
            if self.launcher is not None:  # forked from a pre-imported parent: same program
                program = streamer_binary(self.target.protocol).name
                args = build_args(self.target, ntpstart, str(self.cmdpipe), secrets_fd=secrets_fd)
                try:
                    self._proc = await self.launcher.spawn(
                        program, args, stdin_fd, limit=STDERR_LINE_LIMIT, pass_fd=secrets_fd
                    )
                except LaunchError as exc:
                    self.logger.warning("%s; starting %s directly", exc, program)
            if self._proc is None:
                self._proc = await self._exec(argv, stdin_fd, secrets_fd)
        finally:
            if secrets_fd is not None:
                os.close(secrets_fd)
        self._reader = asyncio.create_task(self._read_stderr(), name=f"stderr-{self.target.key}")

    async def _exec(self, argv: list[str], stdin_fd: int, pass_fd: int | None) -> StreamerHandle:
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=stdin_fd,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # Ctrl-C reaches us only; we stop the streamer in order
                limit=STDERR_LINE_LIMIT,
                pass_fds=() if pass_fd is None else (pass_fd,),
            )
        except OSError as exc:
            raise StreamerError(ErrorCode.SPAWN_FAILED, f"cannot start {argv[1]}: {exc}") from exc

    async def wait_connected(self, timeout: float) -> Connected:
        """The `connected` event; StreamerError if it exits, errors or times out first."""
        if self._connected is None:
            raise StreamerError(ErrorCode.NOT_STARTED, "streamer not spawned")
        try:
            return await asyncio.wait_for(asyncio.shield(self._connected), timeout)
        except TimeoutError:
            raise StreamerError(
                ErrorCode.CONNECT_TIMEOUT,
                f"{self.target.name}: not connected after {timeout:.1f} s",
            ) from None

    async def wait_exit(self, timeout: float | None = None) -> int | None:
        """Wait for the process to exit; its return code, or None on timeout."""
        try:
            await asyncio.wait_for(self._exited.wait(), timeout)
        except TimeoutError:
            return None
        return self.returncode

    async def send(self, *lines: str) -> bool:
        """Send FIFO commands; False if the streamer is gone or never opened its FIFO."""
        if not self.running:
            return False
        return await self.commands.send(*lines)

    async def _read_stderr(self) -> None:
        assert self._proc is not None
        assert self._proc.stderr is not None
        stderr = self._proc.stderr
        while True:
            try:
                raw = await stderr.readline()
            except ValueError:  # an over-long line: skipped
                continue
            if not raw:
                break
            self.record(raw.decode("utf-8", "replace").rstrip("\r\n"))
        self.returncode = await self._proc.wait()
        self._exited.set()
        self._fail_connect(StreamerError(ErrorCode.EXITED, f"streamer exited ({self.returncode})"))
        self.commands.close()
        self._notify(Exit(self.returncode))

    def _on_event(self, event: StatusEvent) -> None:
        if isinstance(event, Connected):
            if self._connected is not None and not self._connected.done():
                self.connected_at = time.monotonic()
                self._connected.set_result(event)
        elif isinstance(event, Error):
            self._fail_connect(StreamerError(event.code, event.message))
        self._notify(event)

    def _fail_connect(self, error: StreamerError) -> None:
        if self._connected is not None and not self._connected.done():
            self._connected.set_exception(error)
            self._connected.exception()  # retrieved: nobody may be waiting

    def _notify(self, event: StatusEvent) -> None:
        if self.on_status is not None:
            try:
                self.on_status(self, event)
            except Exception:  # a listener bug must not kill the reader
                self.logger.exception("status listener failed")

    async def stop(self, *, graceful: bool = True) -> int | None:
        """ACTION=STOP (if graceful), then SIGTERM, then SIGKILL; reaps; removes the FIFO."""
        proc = self._proc
        if proc is not None and not self._exited.is_set():
            if graceful and await self.commands.send("ACTION=STOP"):
                await self.wait_exit(STOP_GRACE_S)
            for signum in (signal.SIGTERM, signal.SIGKILL):
                if self._exited.is_set():
                    break
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signum)
                await self.wait_exit(KILL_WAIT_S)
        if self._reader is not None:
            if not self._reader.done():
                self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            self.returncode = await proc.wait()
        self.commands.close()
        with contextlib.suppress(FileNotFoundError):
            self.cmdpipe.unlink()  # only present if the streamer was killed hard
        return self.returncode
