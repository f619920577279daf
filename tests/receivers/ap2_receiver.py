"""A complete emulated AirPlay 2 receiver: pairing core + session + UDP stream + PTP slave.

Asyncio only moves bytes and time; the logic is in `ap2_emulator_core`, `ap2_stream` and
`ap2_ptp_slave`. Binds to one address (127.0.0.1 by default, or an address inside a test's own
network namespace); the PTP slave needs UDP 319/320, so `ptp=True` only works in a namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from types import TracebackType
from typing import Any

from tests.receivers.ap2_emulator import Ap2Emulator
from tests.receivers.ap2_emulator_core import BadRequest, EmuFraming
from tests.receivers.ap2_ptp_own import OwnClock, OwnClockMaster
from tests.receivers.ap2_ptp_slave import PtpSlave
from tests.receivers.ap2_stream import Ap2StreamSession, Datagram
from tests.receivers.queued import read_queued_datagrams
from tests.receivers.strict import ErrorLog

TICK_S = 0.005
SO_TIMESTAMPING = 37  # Linux: kernel send stamps, read back from the error queue
SO_TIMESTAMPNS = 35  # Linux: each datagram's arrival time as ancillary data
EVENT_REQUEST = (
    b"POST /command RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/x-apple-binary-plist\r\n"
    b"Content-Length: 0\r\n\r\n"
)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Any) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.on_datagram(data, (str(addr[0]), int(addr[1])))


class Ap2Receiver:
    """Use as `async with Ap2Receiver(...) as receiver:`; `receiver.port` is the RTSP port.

    Strict by default, as `Ap2Emulator`: a clean exit fails on any undeclared recorded error.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        ptp: bool = False,
        ptp_probe_after_s: float = 0.0,
        ptp_silent: bool = False,
        ptp_own_clock: bool = False,
        ptp_clock_ppm: float = 0.0,
        homepod_clock: OwnClock | None = None,
        rtsp_port: int = 0,
        session_options: dict[str, Any] | None = None,
        **device_options: Any,
    ) -> None:
        self.host = host
        self.ptp = ptp
        self.rtsp_port = rtsp_port
        self.session_options = session_options or {}
        self.emulator = Ap2Emulator(host, **device_options)
        self.emulator.before_request = self._read_queued_datagrams
        self.slave = PtpSlave(
            probe_after_s=ptp_probe_after_s,
            silent=ptp_silent,
            own_clock=ptp_own_clock or homepod_clock is not None,
        )
        # A standalone HomePod: its own free-running clock, master once we stop offering ours.
        self.own_master = (
            None if homepod_clock is None else OwnClockMaster(self.slave.clock_id, homepod_clock)
        )
        if self.own_master is not None:
            self.session_options = {"own_clock_id": self.slave.clock_id, **self.session_options}
        self.session: Ap2StreamSession | None = None
        # The PTP slave's local clock: the wall clock running `ptp_clock_ppm` fast (a crystal's
        # rate error, as real receivers have; 0: the wall clock itself).
        self.clock_ppm = ptp_clock_ppm
        self._clock_origin = time.time_ns()
        self.event_replies = 0
        self._udp: dict[str, _Udp] = {}
        self._event_server: asyncio.Server | None = None
        self._buffered_server: asyncio.Server | None = None
        self._blackout_until = 0.0
        self._buffered_writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._raw_event: socket.socket | None = None
        self._event_stamp: int | None = None

    def ptp_local_ns(self, wall_ns: int | None = None) -> int:
        """The PTP slave's local clock at wall-clock `wall_ns` (default now)."""
        wall = time.time_ns() if wall_ns is None else wall_ns
        return wall + round((wall - self._clock_origin) * self.clock_ppm / 1e6)

    def wall_of_ptp_local(self, local_ns: float) -> float:
        """The wall-clock instant of a PTP-slave local time (inverse of `ptp_local_ns`)."""
        return self._clock_origin + (local_ns - self._clock_origin) / (1 + self.clock_ppm / 1e6)

    @property
    def errors(self) -> ErrorLog:
        """Every refusal and violation recorded (pairing, RTSP session, stream, events)."""
        return self.emulator.errors

    def expect_error(self, *patterns: str) -> None:
        """Declare errors the test provokes on purpose (regular expressions, searched)."""
        self.emulator.expect_error(*patterns)

    @property
    def port(self) -> int:
        """The RTSP (pairing + control) port."""
        return self.emulator.port

    async def start(self) -> None:
        """Open every socket and start the tick loop."""
        loop = asyncio.get_running_loop()
        for kind in ("data", "control", "timing"):
            await self._open_udp(kind, 0)
        if self.ptp:
            if self.own_master is not None:  # read 319 ourselves, with arrival stamps
                self._open_stamped_event(loop)
            else:
                await self._open_udp("ptp_event", 319)
            await self._open_udp("ptp_general", 320)
        self._event_server = await asyncio.start_server(self._serve_events, self.host, 0)
        self._buffered_server = await asyncio.start_server(
            self._serve_buffered, sock=_small_buffer_listener(self.host)
        )
        self.session = Ap2StreamSession(
            event_port=self._event_server.sockets[0].getsockname()[1],
            data_port=self._local_port("data"),
            control_port=self._local_port("control"),
            addresses=[self.host],
            errors=self.emulator.device.errors,
            buffered_port=self._buffered_server.sockets[0].getsockname()[1],
            **{"ptp_locked": self._ptp_locked, **self.session_options},
        )
        self.emulator.device.session_handler = self.session.handle
        if self.rtsp_port:
            server = await asyncio.start_server(self.emulator._serve, self.host, self.rtsp_port)
            self.emulator._server = server
            self.emulator.port = self.rtsp_port
        else:
            await self.emulator.start()
        self._spawn(self._tick(loop))

    async def _open_udp(self, kind: str, port: int) -> None:
        loop = asyncio.get_running_loop()

        def on_datagram(data: bytes, addr: tuple[str, int]) -> None:
            self._datagram(kind, data, addr)

        _, protocol = await loop.create_datagram_endpoint(
            lambda: _Udp(on_datagram), local_addr=(self.host, port)
        )
        self._udp[kind] = protocol

    async def _read_queued_datagrams(self) -> None:
        await read_queued_datagrams(protocol.transport for protocol in self._udp.values())

    def _local_port(self, kind: str) -> int:
        transport = self._udp[kind].transport
        assert transport is not None
        return int(transport.get_extra_info("sockname")[1])

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send(self, datagrams: list[Datagram]) -> None:
        for kind, data, addr in datagrams:
            transport = self._udp[kind].transport
            if transport is not None:
                transport.sendto(data, addr)

    def _datagram(self, kind: str, data: bytes, addr: tuple[str, int]) -> None:
        session = self.session
        assert session is not None
        now = time.monotonic()
        if kind == "data":
            self._send(session.audio_received(data, now))
        elif kind == "control":
            self._send(session.control_received(data, addr, now))
        elif kind == "timing":
            session.timing_reply(data, time.time_ns())
        elif kind == "ptp_event":
            wall_ns = self._event_stamp or time.time_ns()
            if self.own_master is not None and len(data) > 0 and data[0] & 0x0F == 0x1:
                self.own_master.delay_req(data, addr[0], wall_ns)
                return
            if self.own_master is not None and len(data) > 0 and data[0] & 0x0F == 0x0:
                self.own_master.sync_seen(now)
            self.slave.event_received(data, addr[0], self.ptp_local_ns(wall_ns))
        else:
            self.slave.general_received(data, addr[0], self.ptp_local_ns())

    async def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        session = self.session
        assert session is not None
        while True:
            now = time.monotonic()
            self.slave.follow(session.timing_clock_ids)
            self._send(session.poll(now))
            host = self._sender_host()
            request = session.timing_request(now, time.time_ns()) if host else None
            if request is not None and host is not None and session.sender_timing_port:
                self._send([("timing", request, (host, session.sender_timing_port))])
            if self.own_master is not None:
                self._own_master_tick(now)
            announce = None if self.own_master else self.slave.announce_own(now)
            if announce is not None and self.slave.master_address is not None:
                general = self._udp["ptp_general"].transport
                if general is not None:
                    general.sendto(announce, (self.slave.master_address, 320))
            delay_req = self.slave.poll(now, self.ptp_local_ns())
            if delay_req is not None and self.slave.master_address is not None:
                transport = self._udp["ptp_event"].transport
                if transport is not None:
                    transport.sendto(delay_req, (self.slave.master_address, 319))
            await asyncio.sleep(TICK_S)

    def _read_event_stamped(self) -> None:
        """A HomePod's port 319, read with each datagram's kernel arrival stamp (as its
        hardware stamps it), instead of the asyncio transport's plain reads."""
        sock = self._raw_event_socket()
        for _ in range(32):
            try:
                data, ancillary, _flags, addr = sock.recvmsg(512, 256)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._event_stamp = _stamp_of(ancillary)
            self._datagram("ptp_event", data, (str(addr[0]), int(addr[1])))
            self._event_stamp = None

    def _own_master_tick(self, now: float) -> None:
        master = self.own_master
        session = self.session
        assert master is not None
        assert session is not None
        if master.sender is None and session.peers:  # SETPEERS named the sender
            master.sender = self._sender_host()
        general = self._udp["ptp_general"].transport
        sender = master.sender
        if sender is None or general is None:
            return
        for port, datagram in master.poll(now):
            if port == 320:
                general.sendto(datagram, (sender, port))
                continue
            left = _send_stamped(self._raw_event_socket(), datagram, (sender, port))
            general.sendto(master.sync_sent(left), (sender, 320))  # when the Sync left

    def _raw_event_socket(self) -> socket.socket:
        """A HomePod's port 319: a plain socket with kernel stamps both ways (its hardware
        stamps its PTP messages), read by `_read_event_stamped`."""
        assert self._raw_event is not None
        return self._raw_event

    def _open_stamped_event(self, loop: asyncio.AbstractEventLoop) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, 319))
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            with contextlib.suppress(OSError):  # software send stamps, reported without data
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, (1 << 4) | (1 << 11))
        except OSError:
            sock.close()
            raise
        self._raw_event = sock
        loop.add_reader(sock.fileno(), self._read_event_stamped)

    def _sender_host(self) -> str | None:
        for writer in self.emulator._writers:
            peer = writer.get_extra_info("peername")
            if peer:
                return str(peer[0])
        return None

    async def _serve_events(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """The sender's event connection: send one request, expect an encrypted 200."""
        task = asyncio.current_task()
        assert task is not None
        assert self.session is not None
        self._tasks.add(task)
        framing = EmuFraming(self.session.shared_secret, events=True)
        try:
            writer.write(framing.seal(EVENT_REQUEST))
            await writer.drain()
            buffer = b""
            while data := await asyncio.wait_for(reader.read(4096), 60.0):
                buffer += framing.open(data)
                while b"\r\n\r\n" in buffer:
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    if head.startswith(b"RTSP/1.0 200") and b"CSeq: 1" in head:
                        self.event_replies += 1
                    else:
                        self.session.errors.record(f"bad event reply {head[:60]!r}")
        except (TimeoutError, ConnectionError):
            pass
        except BadRequest as exc:
            self.session.errors.record(f"event channel: {exc}")
        finally:
            self._tasks.discard(task)
            writer.close()

    def _ptp_locked(self) -> bool:
        """PTP sessions: our slave has locked onto the sender's grandmaster (a HomePod: it is
        the master and its Sync stream runs)."""
        if self.own_master is not None:
            return self.own_master.mastering
        return self.slave.locked_at_local is not None

    def blackout(self, seconds: float) -> None:
        """Stop reading the buffered data connection for `seconds` (a link that goes dark: the
        sender's data backs up in its socket buffers)."""
        self._blackout_until = time.monotonic() + seconds

    async def _serve_buffered(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """The sender's type-103 TCP data connection."""
        task = asyncio.current_task()
        assert task is not None
        assert self.session is not None
        self._tasks.add(task)
        self._buffered_writers.add(writer)
        try:
            while True:
                dark = self._blackout_until - time.monotonic()
                if dark > 0:
                    await asyncio.sleep(dark)
                    continue
                data = await asyncio.wait_for(reader.read(8192), 60.0)
                if not data:
                    break
                self.session.buffered_received(data, time.time_ns())
        except (TimeoutError, ConnectionError):
            pass
        finally:
            self._tasks.discard(task)
            self._buffered_writers.discard(writer)
            writer.close()

    def close_buffered(self) -> None:
        """Close the buffered data connection (the RTSP session stays up)."""
        for writer in list(self._buffered_writers):
            writer.close()

    async def stop(self) -> None:
        """Close everything (bounded)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:  # (asyncio.wait refuses an empty set, and a bare coroutine)
            with contextlib.suppress(Exception):
                await asyncio.wait(list(self._tasks), timeout=2.0)
        if self._event_server is not None:
            self._event_server.close()
        if self._buffered_server is not None:
            self._buffered_server.close()
        await self.emulator.stop()
        for protocol in self._udp.values():
            if protocol.transport is not None:
                protocol.transport.close()
        if self._raw_event is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._raw_event.fileno())
            self._raw_event.close()

    async def __aenter__(self) -> Ap2Receiver:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        if exc_type is None:
            self.errors.check(f"AirPlay 2 receiver {self.emulator.device.name!r}")


def _stamp_of(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The kernel's arrival (or send) stamp in a message's ancillary data, wall ns."""
    for level, kind, payload in ancillary:
        ours = level == socket.SOL_SOCKET and kind in (SO_TIMESTAMPNS, SO_TIMESTAMPING)
        if ours and len(payload) >= 16:
            seconds, nanos = struct.unpack_from("=qq", payload)
            if seconds or nanos:
                return int(seconds) * 1_000_000_000 + int(nanos)
    return None


def _send_stamped(sock: socket.socket, data: bytes, address: tuple[str, int]) -> int:
    """Send with a kernel TX stamp requested; that stamp (wall ns), else the time before."""
    before = time.time_ns()
    ask = [(socket.SOL_SOCKET, SO_TIMESTAMPING, struct.pack("=I", 1 << 1))]  # TX_SOFTWARE
    try:
        sock.sendmsg([data], ask, 0, address)
        _data, ancillary, _flags, _addr = sock.recvmsg(1, 256, socket.MSG_ERRQUEUE)
    except OSError:
        return before
    stamp = _stamp_of(ancillary)
    return before if stamp is None else stamp


def _small_buffer_listener(host: str) -> socket.socket:
    """A listening TCP socket whose connections have a small receive buffer, so that a pause
    in reading backs data up to the sender quickly (a blackout is not hidden in our kernel)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    sock.bind((host, 0))
    sock.listen(4)
    sock.setblocking(False)
    return sock
