"""The sender's UDP side: timing responder and control port (sync out, resend requests in)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

from airplay_provider.protocol.rtp import (
    RtpError,
    parse_resend_request,
    parse_timing_request,
    timing_reply,
)
from airplay_provider.streamer.clock import SenderClock

Address = tuple[str, int]


def open_udp_socket(family: int, bind_address: str | None) -> socket.socket:
    """A non-blocking UDP socket on an ephemeral port."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        host = bind_address or ("::" if family == socket.AF_INET6 else "0.0.0.0")
        sock.bind((host, 0))
    except OSError:
        sock.close()
        raise
    return sock


class _WatchedSocket:
    """A UDP socket the event loop watches for readability (`_on_readable`); `close` undoes it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_readable)
        self._closed = False

    def _on_readable(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop reading and close the socket."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.sock.fileno())
            self.sock.close()


class UdpEndpoint(_WatchedSocket):
    """A UDP socket read from the event loop with a per-datagram callback."""

    def __init__(self, sock: socket.socket, on_datagram: Callable[[bytes, Address], None]) -> None:
        self._on_datagram = on_datagram
        super().__init__(sock)

    @property
    def port(self) -> int:
        """The bound local port."""
        return int(self.sock.getsockname()[1])

    def _on_readable(self) -> None:
        for _ in range(64):  # bounded: never starve the pacing loop
            try:
                data, addr = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ICMP port unreachable surfaced as ECONNREFUSED
            self._on_datagram(data, (str(addr[0]), int(addr[1])))

    def send(self, data: bytes, addr: Address) -> bool:
        """Send one datagram; False when the kernel refused it (counted by the caller)."""
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError, OSError):
            return False
        return True


class TimingResponder:
    """Answers NTP-like timing requests (0xD2) from the sender clock (A.13)."""

    def __init__(self, sock: socket.socket, clock: SenderClock) -> None:
        self.clock = clock
        self.requests = 0
        self.answered = asyncio.Event()
        self.peer: Address | None = None
        self.endpoint = UdpEndpoint(sock, self._on_datagram)

    def _on_datagram(self, data: bytes, addr: Address) -> None:
        received = self.clock.ntp()
        try:
            request = parse_timing_request(data)
        except RtpError:
            return
        reply = timing_reply(request, receive_ntp=received, transmit_ntp=self.clock.ntp())
        if self.endpoint.send(reply, addr):
            self.requests += 1
            self.peer = addr
            self.answered.set()


class ControlChannel:
    """Our control port: sends sync packets, receives resend requests (0xD5)."""

    def __init__(self, sock: socket.socket, on_resend: Callable[[int, int, Address], None]) -> None:
        self._on_resend = on_resend
        self.endpoint = UdpEndpoint(sock, self._on_datagram)

    def _on_datagram(self, data: bytes, addr: Address) -> None:
        try:
            request = parse_resend_request(data)
        except RtpError:
            return
        self._on_resend(request.first_seq, request.count, addr)


class AudioSender(_WatchedSocket):
    """The socket audio leaves by, connected to the receiver's audio port: the kernel then
    reports an ICMP "port unreachable" for it (a refused send or receive) — a sign the receiver
    is gone; `on_refused` is called for each one."""

    def __init__(self, sock: socket.socket, addr: Address, on_refused: Callable[[], None]) -> None:
        self.addr = addr
        self._on_refused = on_refused
        try:
            sock.connect(addr)
        except OSError:
            sock.close()
            raise
        super().__init__(sock)

    def _on_readable(self) -> None:
        for _ in range(64):  # a pending error makes the socket readable; nothing else arrives
            try:
                self.sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:
                self._on_refused()
            except OSError:
                return

    def send(self, data: bytes) -> bool:
        """Send one datagram to the audio port; False when the kernel refused it."""
        try:
            self.sock.send(data)
        except ConnectionRefusedError:
            self._on_refused()
            return False
        except (BlockingIOError, InterruptedError, OSError):
            return False
        return True
