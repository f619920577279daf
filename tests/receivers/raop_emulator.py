"""A strict RAOP (AirPlay 1) receiver emulator on loopback, for tests of our RAOP sender.

Plain (unencrypted) RAOP only: no RSA/AES, no Apple-Response (encryption is covered by the
shairport-sync tests). It is independent of ``airplay_provider`` (own RTSP parser, own ALAC
escape-frame decoder, own packet parsing) so it cannot share a bug with the sender.

``RaopEmulator`` binds an RTSP TCP port and three UDP ports (audio, control, timing) on free
loopback ports and drives the sans-I/O :class:`RaopReceiverCore`; everything it learns is on
``emulator.core`` (RTSP records) and ``emulator.stream`` (sync, audio, timing, loss).

    async with RaopEmulator(drop_rate=0.05) as receiver:
        ...  # point the sender at 127.0.0.1:receiver.port
        await receiver.wait_for(lambda core: core.teardown_at is not None, seconds=30)
        pcm = receiver.stream.reconstructed_pcm()
    # leaving the block cleanly fails the test if the receiver recorded any error the test did
    # not declare (`RaopEmulator(expect_errors=[...])`, `receiver.expect_error(...)`)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Self

from tests.receivers.queued import read_queued_datagrams
from tests.receivers.raop_emulator_core import RaopReceiverCore
from tests.receivers.raop_emulator_stream import RaopStreamReceiver
from tests.receivers.raop_emulator_wire import RECEIVER_FIXED_DELAY, Datagram, UdpSocket
from tests.receivers.strict import ErrorLog

_CLOSE_TIMEOUT = 5.0
_MAX_IDLE_WAIT = 1.0

if TYPE_CHECKING:
    from tests.receivers.ap2_emulator_legacy import LegacyAccessory


class _UdpEndpoint(asyncio.DatagramProtocol):
    """Hands every datagram of one socket to the emulator."""

    def __init__(self, emulator: RaopEmulator, kind: UdpSocket) -> None:
        self._emulator = emulator
        self._kind = kind

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._emulator._datagram(self._kind, data)

    def error_received(self, exc: Exception) -> None:
        """ICMP errors (sender port gone) are not the receiver's problem."""


class RaopEmulator:
    """Async context manager: a strict RAOP receiver on ``host`` (loopback only)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        password: str | None = None,
        drop_rate: float = 0.0,
        drop_seed: int = 0,
        audio_latency: int = RECEIVER_FIXED_DELAY,
        timing_burst_interval: float = 0.3,
        timing_interval: float = 3.0,
        first_timing_delay: float = 0.0,
        resend_attempts: int = 3,
        resend_interval: float = 0.1,
        idle_timeout: float = 60.0,
        legacy_accessory: LegacyAccessory | None = None,
        port: int = 0,
        expect_errors: Iterable[str] = (),
    ) -> None:
        if host not in ("127.0.0.1", "::1"):
            raise ValueError("the emulator binds loopback only")
        self.host = host
        self._idle_timeout = idle_timeout
        self.core = RaopReceiverCore(
            password=password,
            audio_latency=audio_latency,
            drop_rate=drop_rate,
            drop_seed=drop_seed,
            timing_burst_interval=timing_burst_interval,
            timing_interval=timing_interval,
            first_timing_delay=first_timing_delay,
            resend_attempts=resend_attempts,
            resend_interval=resend_interval,
            legacy_accessory=legacy_accessory,
            expect_errors=expect_errors,
        )
        self.port = port  # the RTSP port (0: any free one)
        self._udp: dict[UdpSocket, asyncio.DatagramTransport] = {}
        self._server: asyncio.Server | None = None
        self._writers: dict[int, asyncio.StreamWriter] = {}
        self._client_tasks: set[asyncio.Task[None]] = set()
        self._conn_ids = itertools.count(1)
        self._ticker: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._update = asyncio.Event()
        self._closing = False

    # ------------------------------------------------------------------ what tests read

    @property
    def stream(self) -> RaopStreamReceiver:
        """The UDP side of the latest ANNOUNCEd stream."""
        return self.core.stream

    @property
    def errors(self) -> ErrorLog:
        """Every refusal and protocol violation seen (RTSP and stream)."""
        self.core.stream.settle()  # compressed audio is decoded when asked for
        return self.core.errors

    def expect_error(self, *patterns: str) -> None:
        """Declare errors the test provokes on purpose (regular expressions, searched)."""
        self.core.errors.expect(*patterns)

    @property
    def audio_port(self) -> int:
        """The receiver's audio UDP port."""
        return self.core.ports[0]

    @property
    def control_port(self) -> int:
        """The receiver's control UDP port."""
        return self.core.ports[1]

    @property
    def timing_port(self) -> int:
        """The receiver's timing UDP port."""
        return self.core.ports[2]

    async def wait_for(
        self, predicate: Callable[[RaopReceiverCore], bool], seconds: float = 10.0
    ) -> None:
        """Wait until ``predicate(core)`` holds (checked after every event); TimeoutError."""
        async with asyncio.timeout(seconds):
            while not predicate(self.core):
                await self._update.wait()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        try:
            ports: list[int] = []
            kinds: tuple[UdpSocket, ...] = ("audio", "control", "timing")
            for kind in kinds:
                transport, _ = await loop.create_datagram_endpoint(
                    functools.partial(_UdpEndpoint, self, kind), local_addr=(self.host, 0)
                )
                self._udp[kind] = transport
                ports.append(transport.get_extra_info("sockname")[1])
            self.core.ports = (ports[0], ports[1], ports[2])
            self._server = await asyncio.start_server(self._serve_client, self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ticker = asyncio.create_task(self._tick(), name="raop-emulator-tick")
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
        if exc_type is None:
            self.errors.check(f"RAOP emulator on port {self.port}")

    def kill(self, *, rtsp: bool = True, udp: bool = True) -> None:
        """Vanish as a killed receiver does: its sockets closed at once, nothing said (the
        kernel then refuses the sender's packets); `close` afterwards cleans up. `rtsp`/`udp`
        False keeps that side alive (one sign of death at a time)."""
        if rtsp:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers.values()):
                writer.transport.abort()
        if udp:
            for transport in self._udp.values():
                transport.abort()

    async def close(self) -> None:
        """Close the server, every client connection, every socket and task."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers.values()):
            writer.close()
        if self._client_tasks:
            _, pending = await asyncio.wait(self._client_tasks, timeout=_CLOSE_TIMEOUT)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), _CLOSE_TIMEOUT)
            self._server = None
        if self._ticker is not None:
            self._closing = True
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        for transport in self._udp.values():
            transport.close()
        self._udp.clear()

    # ------------------------------------------------------------------ I/O

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._client_tasks.add(task)
        conn = next(self._conn_ids)
        self._writers[conn] = writer
        self.core.connection_made(conn, str(writer.get_extra_info("peername")[0]))
        try:
            while True:
                data = await asyncio.wait_for(reader.read(65536), self._idle_timeout)
                if not data:
                    break
                await read_queued_datagrams(self._udp.values())  # sent before this request
                output = self.core.rtsp_received(conn, data, time.time())
                self._changed()
                if output.data:
                    writer.write(output.data)
                    await asyncio.wait_for(writer.drain(), _CLOSE_TIMEOUT)
                if output.close:
                    break
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            self.core.connection_lost(conn, time.time())
            self._changed()
            self._writers.pop(conn, None)
            writer.close()
            with contextlib.suppress(TimeoutError, ConnectionError, OSError):
                await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT)
            self._client_tasks.discard(task)

    def _datagram(self, kind: UdpSocket, data: bytes) -> None:
        now = time.time()
        if kind == "audio":
            self._send(self.core.audio_received(data, now))
        elif kind == "control":
            self._send(self.core.control_received(data, now))
        else:
            self.core.timing_received(data, now)
        self._changed()

    def _send(self, datagrams: list[Datagram]) -> None:
        for datagram in datagrams:
            transport = self._udp.get(datagram.socket)
            if transport is not None and not transport.is_closing():
                transport.sendto(datagram.data, datagram.addr)

    def _changed(self) -> None:
        self._wake.set()
        self._update.set()
        self._update = asyncio.Event()

    async def _tick(self) -> None:
        """Send timing requests and resend retries when the core says they are due."""
        while not self._closing:  # (on 3.11, wait_for can swallow the cancel: see `close`)
            self._send(self.core.poll(time.time()))
            deadline = self.core.next_deadline()
            delay = _MAX_IDLE_WAIT if deadline is None else deadline - time.time()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(max(delay, 0.005), _MAX_IDLE_WAIT))
