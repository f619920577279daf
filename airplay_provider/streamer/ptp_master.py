"""The host's PTP grandmaster for AirPlay 2 and the small daemon every `cliap2` shares.

Only one process per network namespace can own UDP 319/320, so the grandmaster runs in its own
detached process (`python -m airplay_provider.streamer.ptp_master --detach`), started by the
first streamer that needs it. Streamers talk to it over an abstract Unix socket (scoped to the
network namespace, like the ports) with JSON lines: `{"peers": [ip, ...]}` adds timing peers,
the answer names the clock (`clock_id`, `ptp_minus_mono_ns`, `pid`); `{"follow": [ip]}` asks
it to follow those receivers' own clocks instead (`ptp_followers`; answer `follow`). A peer is
served while a client holds it and for `linger` seconds after; the daemon exits once nobody has
needed it for `linger` seconds. PTP time is `CLOCK_MONOTONIC + ptp_minus_mono_ns` in every
process, so all streams of the host share one timeline exactly.
The streamer's side (join, lease) is `ptp_lease`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import select
import socket
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from airplay_provider.protocol import ptp
from airplay_provider.protocol.errors import AirplayError
from airplay_provider.protocol.ptp_readiness import PeerContact, is_awakening
from airplay_provider.streamer.ptp_followers import Followers
from airplay_provider.streamer.ptp_stamps import enable_send_stamps, send_stamped

SYNC_INTERVAL_S = 0.125
ANNOUNCE_EVERY = 8  # Sync periods per Announce (1 s)
DEFAULT_LINGER_S = 20.0
LINGER_ENV = "AIRPLAY_PTP_LINGER_S"
SPAWN_TIMEOUT_S = 5.0
CONTACT_TTL_S = 3600.0


#: Linux SO_TIMESTAMPNS (= SCM_TIMESTAMPNS): each datagram comes with the kernel's CLOCK_REALTIME
#: receive time, so a Delay_Req's t4 does not include the time spent on the datagrams before
#: it (64 receivers probe in bursts after each Sync).
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("=qq")
#: SO_TIMESTAMPNS, and room for the SCM_TIMESTAMPING a socket with send stamps also gets.
_RECV_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(48)


def enable_receive_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp each datagram's arrival; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def recv_stamped(sock: socket.socket) -> tuple[bytes, tuple[str, int], int | None]:
    """One datagram, its sender, and its kernel arrival time in CLOCK_MONOTONIC ns (None
    without a kernel stamp)."""
    data, ancillary, _flags, addr = sock.recvmsg(512, _RECV_SPACE)
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
            seconds, nanos = _TIMESPEC.unpack_from(payload)
            wall_minus_mono = time.time_ns() - time.monotonic_ns()
            return (
                data,
                (str(addr[0]), int(addr[1])),
                seconds * 1_000_000_000 + nanos - (wall_minus_mono),
            )
    return data, (str(addr[0]), int(addr[1])), None


def socket_name() -> str:
    """The daemon's abstract Unix socket name (per user, per network namespace)."""
    return f"\0airplay-provider-ptp-{os.getuid()}"


class PtpUnavailable(AirplayError):
    """No grandmaster can run here (ports taken or not permitted); use NTP timing."""


class Grandmaster:
    """Unicast gPTP grandmaster on two bound sockets (event 319, general 320)."""

    def __init__(
        self, event_sock: socket.socket, general_sock: socket.socket, *, clock_id: int
    ) -> None:
        self.identity = ptp.PortIdentity(clock_id)
        self.ptp_minus_mono_ns = time.time_ns() - time.monotonic_ns()
        self.event_sock = event_sock
        self.general_sock = general_sock
        self.peers: dict[str, float] = {}  # address -> serve until (monotonic s; inf = held)
        self.sequence = 0
        self.delay_requests = 0
        self.contacts: dict[str, PeerContact] = {}  # what each served peer sent us
        self._announced: set[str] = set()
        self.followers = Followers(self.identity)  # peers whose own clock we follow instead
        self._loop = asyncio.get_running_loop()
        self.kernel_stamps = enable_receive_timestamps(event_sock)
        self.send_stamps = enable_send_stamps(event_sock)  # our Delay_Req to followed peers
        for sock in (event_sock, general_sock):
            sock.setblocking(False)
            self._loop.add_reader(sock.fileno(), self._on_readable, sock)

    def now_ns(self) -> int:
        """Current time on the PTP timeline."""
        return time.monotonic_ns() + self.ptp_minus_mono_ns

    def _on_readable(self, sock: socket.socket) -> None:
        for _ in range(32):
            try:
                data, addr, mono_ns = recv_stamped(sock)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            arrived = self.now_ns() if mono_ns is None else mono_ns + self.ptp_minus_mono_ns
            try:
                message = ptp.decode(data)
            except ptp.PtpError:
                continue
            self._heard(str(addr[0]), message)
            if str(addr[0]) in self.followers:
                self.followers.received(str(addr[0]), message, arrived, self._send_event)
            elif message.message_type is ptp.MessageType.DELAY_REQ:
                self.delay_requests += 1
                reply = ptp.encode_delay_resp(self.identity, message, arrived)
                self._send(self.general_sock, reply, (str(addr[0]), ptp.GENERAL_PORT))

    def _prune_contacts(self, now_ns: int) -> None:
        """Contacts outlive a peer's lease (nqptp announces itself once per clock, not per
        session), but not forever."""
        horizon = now_ns - round(CONTACT_TTL_S * 1e9)
        for address, contact in list(self.contacts.items()):
            last = max(contact.last_probe_ns or 0, contact.first_announce_ns or 0)
            if address not in self.peers and last < horizon:
                del self.contacts[address]

    def _heard(self, address: str, message: ptp.PtpMessage) -> None:
        """Note a served peer's Delay_Req or Announce (it follows or answers our clock) or Sync
        (it offers its own)."""
        if address not in self.peers:
            return
        contact = self.contacts.setdefault(address, PeerContact())
        kind = message.message_type
        if kind is ptp.MessageType.DELAY_REQ:
            contact.heard_probe(time.monotonic_ns())
        elif kind is ptp.MessageType.ANNOUNCE:
            contact.heard_announce(time.monotonic_ns(), awakening=is_awakening(message.priority1))
        elif kind is ptp.MessageType.SYNC:
            contact.heard_sync()

    def _send(self, sock: socket.socket, data: bytes, addr: tuple[str, int]) -> None:
        with contextlib.suppress(OSError):
            sock.sendto(data, addr)

    def _send_event(self, data: bytes, address: str) -> int:
        """Send on port 319; our PTP time when it left (the kernel's stamp, else just before)."""
        before = self.now_ns()
        if self.send_stamps:
            wall = send_stamped(self.event_sock, data, (address, ptp.EVENT_PORT))
            if wall is not None:
                return wall - (time.time_ns() - time.monotonic_ns()) + self.ptp_minus_mono_ns
            return before
        self._send(self.event_sock, data, (address, ptp.EVENT_PORT))
        return before

    def tick(self) -> None:
        """One Sync period: Sync + Follow_Up to every peer, Announce every 8th period."""
        now = time.monotonic()
        for address, until in list(self.peers.items()):
            if until < now:
                del self.peers[address]
                self._announced.discard(address)
                self.followers.forget(address)
        seq = self.sequence
        self.sequence = (seq + 1) & 0xFFFF
        if seq == 0:  # every ~2 h: forget receivers not heard for CONTACT_TTL_S
            self._prune_contacts(time.monotonic_ns())
        for address in self.peers:
            if address in self.followers:
                continue  # it is the master: we stop offering our clock to it
            if seq % ANNOUNCE_EVERY == 0 or address not in self._announced:
                self._announced.add(address)  # a new peer hears of us at once, not within 1 s
                announce = ptp.encode_announce(self.identity, seq // ANNOUNCE_EVERY)
                self._send(self.general_sock, announce, (address, ptp.GENERAL_PORT))
            sent = self.now_ns()
            self._send(self.event_sock, ptp.encode_sync(self.identity, seq), (address, 319))
            follow_up = ptp.encode_follow_up(self.identity, seq, sent)
            self._send(self.general_sock, follow_up, (address, ptp.GENERAL_PORT))

    async def run(self) -> None:
        """Tick every 125 ms on a fixed grid until cancelled."""
        next_at = self._loop.time()
        while True:
            self.tick()
            next_at += SYNC_INTERVAL_S
            await asyncio.sleep(max(0.0, next_at - self._loop.time()))

    def close(self) -> None:
        """Stop reading and close both sockets."""
        for sock in (self.event_sock, self.general_sock):
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock.fileno())
            sock.close()


def bind_ptp_ports(address: str = "0.0.0.0") -> tuple[socket.socket, socket.socket]:
    """Bind UDP 319 and 320; PtpUnavailable if either is taken or not permitted."""
    bound: list[socket.socket] = []
    try:
        for port in (ptp.EVENT_PORT, ptp.GENERAL_PORT):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            bound.append(sock)
            sock.bind((address, port))
    except OSError as exc:
        for sock in bound:
            sock.close()
        raise PtpUnavailable(f"cannot bind PTP ports 319/320: {exc.strerror or exc}") from exc
    return bound[0], bound[1]


@dataclass
class _Daemon:
    master: Grandmaster
    linger_s: float
    server: asyncio.Server | None = None
    clients: dict[int, set[str]] = field(default_factory=dict)
    last_needed: float = field(default_factory=time.monotonic)

    def hold(self, client: int, peers: list[str], follow: Sequence[str] = ()) -> None:
        self.clients.setdefault(client, set()).update([*peers, *follow])
        for peer in [*peers, *follow]:
            self.master.peers[peer] = float("inf")
        for peer in follow:
            self.master.followers.follow(peer)
        for peer in set(peers) - set(follow):  # served again: offer it our clock again
            self.master.followers.forget(peer)

    def release(self, client: int) -> None:
        released = self.clients.pop(client, set())
        still_held = set().union(*self.clients.values()) if self.clients else set()
        for peer in released - still_held:
            self.master.peers[peer] = time.monotonic() + self.linger_s
        self.last_needed = time.monotonic()

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        client = id(writer)
        self.clients.setdefault(client, set())
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    request = json.loads(line)
                    peers = [str(peer) for peer in request.get("peers", [])]
                    follow = [str(peer) for peer in request.get("follow", [])]
                except (ValueError, AttributeError, TypeError):
                    break
                self.hold(client, peers, follow)
                reports = {peer: self.master.followers.report(peer) for peer in [*peers, *follow]}
                answer = {
                    "clock_id": self.master.identity.clock_id,
                    "ptp_minus_mono_ns": self.master.ptp_minus_mono_ns,
                    "pid": os.getpid(),
                    "contacts": {
                        peer: self.master.contacts.get(peer, PeerContact()).to_wire()
                        for peer in peers
                    },
                    "follow": {
                        peer: report.to_wire()
                        for peer, report in reports.items()
                        if report is not None
                    },
                }
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.release(client)
            writer.close()

    async def run(self) -> None:
        ticker = asyncio.ensure_future(self.master.run())
        try:
            while True:
                await asyncio.sleep(0.25)
                if not self.clients and time.monotonic() - self.last_needed >= self.linger_s:
                    return
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker


async def _daemon_main(ready_fd: int | None, linger_s: float) -> int:
    # The Unix socket is the lock: of two daemons started at once, one gets it, the other
    # answers "busy" and its streamer joins the winner.
    daemon: list[_Daemon] = []  # filled before the loop can serve the first client

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await daemon[0].serve_client(reader, writer)

    try:
        server = await asyncio.start_unix_server(serve, path=socket_name())
    except OSError as exc:
        _report(ready_fd, f"busy {exc}")
        return 4
    try:
        event_sock, general_sock = bind_ptp_ports()
    except PtpUnavailable as exc:
        server.close()
        _report(ready_fd, f"error {exc}")
        return 3
    master = Grandmaster(event_sock, general_sock, clock_id=random.getrandbits(64) | 1)
    daemon.append(_Daemon(master, linger_s, server))
    _report(ready_fd, f"ok {os.getpid()}")
    try:
        await daemon[0].run()
    finally:
        server.close()
        master.close()
    return 0


def _report(ready_fd: int | None, message: str) -> None:
    if ready_fd is None:
        print(message, flush=True)
        return
    with contextlib.suppress(OSError):
        os.write(ready_fd, message.encode() + b"\n")
        os.close(ready_fd)


def _detach_and_run(linger_s: float) -> int:
    """Fork; the child becomes the daemon, the parent relays its first line and exits."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the daemon
        os.close(read_fd)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        os._exit(asyncio.run(_daemon_main(write_fd, linger_s)))
    os.close(write_fd)
    ready, _, _ = select.select([read_fd], [], [], SPAWN_TIMEOUT_S)
    line = os.read(read_fd, 512).decode(errors="replace").strip() if ready else "error timeout"
    os.close(read_fd)
    print(line, flush=True)
    if line.startswith("error"):
        os.waitpid(pid, 0)
        return 3
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m airplay_provider.streamer.ptp_master [--detach] [--linger S]`."""
    parser = argparse.ArgumentParser(prog="ptp_master", description=__doc__)
    parser.add_argument("--detach", action="store_true", help="fork into the background")
    parser.add_argument("--linger", type=float, default=None, help="idle seconds before exit")
    args = parser.parse_args(argv)
    linger = args.linger
    if linger is None:
        linger = float(os.environ.get(LINGER_ENV, DEFAULT_LINGER_S))
    if args.detach:
        return _detach_and_run(linger)
    return asyncio.run(_daemon_main(None, linger))


if __name__ == "__main__":
    sys.exit(main())
