"""Clock readiness: what the grandmaster hears from a receiver decides when it may play, and the
daemon reports it to the streamers (`ptp_master` contacts, `clock_watch` events)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from airplay_provider.protocol import ptp
from airplay_provider.protocol.ptp_readiness import (
    AWAKENING_SETTLE_S,
    MIN_PROBES,
    NS,
    PASSIVE_FOLLOW_S,
    PROBE_LOCK_S,
    STALL_CAUSE,
    STALL_S,
    ClockState,
    PeerContact,
    assess,
    is_awakening,
    merge,
)
from airplay_provider.protocol.streamer_status import ClockStatus, StatusEvent
from airplay_provider.streamer.clock_watch import watch_clock
from airplay_provider.streamer.ptp_lease import PtpLease
from airplay_provider.streamer.ptp_master import (
    CONTACT_TTL_S,
    Grandmaster,
    _Daemon,
    enable_receive_timestamps,
    recv_stamped,
)

S = NS  # one second in ns


def _probing(first_s: float, count: int, every_s: float = 0.125) -> PeerContact:
    contact = PeerContact()
    for index in range(count):
        contact.heard_probe(round((first_s + index * every_s) * S))
    return contact


def test_nothing_heard_is_cold_then_stalled_after_5_s_with_the_cause() -> None:
    contact = PeerContact()
    assert assess(contact, 0, round(4.9 * S)).state is ClockState.COLD
    stalled = assess(contact, 0, round(STALL_S * S))
    assert stalled.state is ClockState.STALLED
    assert stalled.cause == STALL_CAUSE
    assert "319/320" in STALL_CAUSE


def test_a_probing_receiver_is_ready_2_3_s_after_its_first_delay_req() -> None:
    contact = _probing(1.08, 20)  # first probe 1.08 s after SETPEERS, 8 Hz (field figures)
    ready_at = round((1.08 + PROBE_LOCK_S) * S)
    just_before = assess(contact, 0, ready_at - 1)
    assert just_before.state is ClockState.PROBING
    assert just_before.ready_at_ns == ready_at
    assert assess(contact, 0, ready_at).state is ClockState.READY
    # ... a late probe does not make it stall
    assert assess(contact, 0, round(4.9 * S)).state is ClockState.READY


def test_a_few_stray_probes_are_no_lock_and_stopped_probes_are_a_stall() -> None:
    few = _probing(0.5, MIN_PROBES - 1)
    assert assess(few, 0, round(3.5 * S)).state is ClockState.PROBING
    quiet = _probing(0.1, 10)  # last probe at 1.225 s
    assert assess(quiet, 0, round(3.3 * S)).state is ClockState.PROBING  # silent > 2 s
    stopped = assess(quiet, 0, round((1.225 + STALL_S) * S))
    assert stopped.state is ClockState.STALLED
    assert stopped.cause is not None
    assert "stopped" in stopped.cause


def test_a_passive_follower_is_ready_after_setpeers_and_its_announce_settle() -> None:
    contact = PeerContact()
    contact.heard_announce(round(0.2 * S))  # nqptp's two awakening Announces
    contact.heard_announce(round(0.35 * S))
    assert contact.announces == 2
    following = assess(contact, 0, round(1.0 * S))
    assert following.state is ClockState.FOLLOWING
    assert following.ready_at_ns == round(PASSIVE_FOLLOW_S * S)
    assert assess(contact, 0, round(PASSIVE_FOLLOW_S * S)).state is ClockState.READY
    assert assess(contact, 0, 60 * S).state is ClockState.READY  # never stalls: it follows
    late = PeerContact()  # its awakening came late (our Announce reached it late)
    late.heard_announce(round(1.4 * S))
    assert assess(late, 0, round(1.6 * S)).ready_at_ns == round((1.4 + AWAKENING_SETTLE_S) * S)


def test_an_announce_from_the_last_session_does_not_count() -> None:
    contact = PeerContact()
    contact.heard_announce(round(0.2 * S))  # the previous play's awakening
    since = 10 * S  # this play's SETPEERS: nothing since (319/320 blocked now)
    assert assess(contact, since, since + round(4.9 * S)).state is ClockState.COLD
    assert assess(contact, since, since + round(STALL_S * S)).state is ClockState.STALLED
    contact.heard_announce(since - round(0.1 * S))  # this play's, just before `connected`
    following = assess(contact, since, since + round(0.2 * S))
    assert following.state is ClockState.FOLLOWING
    assert following.ready_at_ns == since + round(PASSIVE_FOLLOW_S * S)


def test_a_receiver_announcing_its_own_clock_is_no_follower() -> None:
    assert is_awakening(127)  # nqptp: ours - 1, then ours + 1
    assert is_awakening(129)
    assert not is_awakening(248)  # a HomePod's or Sonos's own clock
    assert not is_awakening(None)
    homepod = PeerContact()
    for second in range(5):
        homepod.heard_announce(second * S, awakening=False)
    assert homepod.announces == 0
    assert homepod.foreign_announces == 5
    assert assess(homepod, 0, round(4.9 * S)).state is ClockState.COLD  # Sonos might probe yet
    own = assess(homepod, 0, round(STALL_S * S))
    assert own.state is ClockState.OWN_CLOCK
    assert own.cause is not None
    assert "own PTP clock" in own.cause
    sonos = _probing(1.1, 20)  # announces its own clock first, then follows ours
    sonos.heard_announce(round(0.2 * S), awakening=False)
    assert assess(sonos, 0, round(3.0 * S)).state is ClockState.PROBING
    assert assess(sonos, 0, round(3.4 * S)).state is ClockState.READY
    grandmaster = PeerContact()
    grandmaster.heard_sync()
    assert assess(grandmaster, 0, round(STALL_S * S)).state is ClockState.OWN_CLOCK


def test_probes_win_over_announces_and_addresses_merge() -> None:
    v4, v6 = PeerContact(), _probing(0.3, 5)
    v4.heard_announce(round(0.1 * S))
    merged = merge([v4, v6])
    assert (merged.delay_requests, merged.announces) == (5, 1)
    assert merged.first_probe_ns == round(0.3 * S)
    assert merged.last_probe_ns == round((0.3 + 4 * 0.125) * S)
    assert assess(merged, 0, round(2.0 * S)).state is ClockState.PROBING


def test_contact_wire_form_round_trips_and_rejects_garbage() -> None:
    contact = _probing(1.0, 3)
    contact.heard_announce(7)
    contact.heard_announce(8, awakening=False)
    contact.heard_sync()
    assert PeerContact.from_wire(contact.to_wire()) == contact
    for bad in ([1, 2], "x", [1, 2, "a", None, None], None):
        with pytest.raises((ValueError, TypeError)):
            PeerContact.from_wire(bad)


# ---- the grandmaster and its daemon, on loopback sockets -----------------------------------


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def _daemon(tmp_path: Path) -> AsyncIterator[tuple[_Daemon, str, socket.socket]]:
    event, general = _udp(), _udp()
    master = Grandmaster(event, general, clock_id=0x1234)
    daemon = _Daemon(master, linger_s=0.5)
    path = str(tmp_path / "ptp.sock")
    server = await asyncio.start_unix_server(daemon.serve_client, path=path)
    receiver = _udp()  # the "receiver": sends from 127.0.0.1
    try:
        yield daemon, path, receiver
    finally:
        receiver.close()
        server.close()
        await server.wait_closed()
        master.close()


async def _lease(path: str) -> PtpLease:
    reader, writer = await asyncio.open_unix_connection(path=path)
    return PtpLease(0, 0, 0, reader, writer)


async def _until(condition: Callable[[], object], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - datagrams arrive on the loop's reader
            await asyncio.sleep(0.01)


async def test_the_daemon_reports_what_each_held_peer_sent(tmp_path: Path) -> None:
    async with _daemon(tmp_path) as (daemon, path, receiver):
        master = daemon.master
        lease = await _lease(path)
        try:
            assert await lease.contacts(["127.0.0.1"]) == {"127.0.0.1": PeerContact()}
            before = time.monotonic_ns()
            delay_req = ptp.encode_delay_req(ptp.PortIdentity(0xAB), 1)
            announce = ptp.encode_announce(ptp.PortIdentity(0xAB), 1)
            receiver.sendto(delay_req, master.event_sock.getsockname())
            receiver.sendto(announce, master.general_sock.getsockname())
            await _until(lambda: master.delay_requests == 1 and master.contacts)
            await _until(lambda: master.contacts["127.0.0.1"].announces == 1)
            contacts = await lease.contacts(["127.0.0.1", "127.0.0.9"])
            assert contacts is not None
            heard = contacts["127.0.0.1"]
            assert (heard.delay_requests, heard.announces) == (1, 1)
            assert heard.first_probe_ns is not None
            assert heard.first_probe_ns >= before
            assert contacts["127.0.0.9"] == PeerContact()
        finally:
            await lease.close()


async def test_a_peer_nobody_serves_is_not_tracked(tmp_path: Path) -> None:
    async with _daemon(tmp_path) as (daemon, _path, receiver):
        master = daemon.master
        receiver.sendto(
            ptp.encode_delay_req(ptp.PortIdentity(1), 1), master.event_sock.getsockname()
        )
        await _until(lambda: master.delay_requests == 1)
        assert master.contacts == {}  # answered, but not remembered (bounded by the peers)


def test_datagrams_carry_their_kernel_arrival_time() -> None:
    receiver, sender = _udp(), _udp()
    try:
        if not enable_receive_timestamps(receiver):
            pytest.skip("no SO_TIMESTAMPNS here")
        sent = time.monotonic_ns()
        sender.sendto(b"x", receiver.getsockname())
        time.sleep(0.05)  # the datagram waits in the socket: its stamp must not move
        data, addr, arrived = recv_stamped(receiver)
        read = time.monotonic_ns()
        assert (data, addr) == (b"x", sender.getsockname())
    finally:
        receiver.close()
        sender.close()
    assert arrived is not None
    assert sent - 1_000_000 <= arrived <= sent + 20_000_000  # ms-level: wall vs monotonic
    assert read - arrived >= 40_000_000  # the arrival, not when we read it


async def test_contacts_outlive_a_lease_but_not_an_hour_of_silence(tmp_path: Path) -> None:
    async with _daemon(tmp_path) as (daemon, _path, _receiver):
        master = daemon.master
        now = time.monotonic_ns()
        old, recent, held = PeerContact(), PeerContact(), PeerContact()
        old.heard_announce(now - round((CONTACT_TTL_S + 1) * S))
        recent.heard_announce(now - 60 * S)
        held.heard_probe(now - round((CONTACT_TTL_S + 1) * S))
        master.contacts = {"10.0.0.2": old, "10.0.0.3": recent, "10.0.0.4": held}
        master.peers["10.0.0.4"] = float("inf")
        master._prune_contacts(now)
        assert set(master.contacts) == {"10.0.0.3", "10.0.0.4"}


class _Contacts:
    """A lease whose grandmaster hears a probe every `every_s` from `first_s` on (or never)."""

    def __init__(self, first_s: float | None, every_s: float = 0.05, stop_s: float = 1e9) -> None:
        self.start = time.monotonic_ns()
        self.first_s, self.every_s, self.stop_s = first_s, every_s, stop_s
        self.asked: list[list[str]] = []

    async def contacts(self, peers: list[str]) -> dict[str, PeerContact] | None:
        self.asked.append(peers)
        contact = PeerContact()
        if self.first_s is not None:
            first = self.start + round(self.first_s * S)
            now = min(time.monotonic_ns(), self.start + round(self.stop_s * S))
            at = first
            while at <= now:
                contact.heard_probe(at)
                at += round(self.every_s * S)
        return {peers[0]: contact}


class _Sink:
    def __init__(self) -> None:
        self.events: list[StatusEvent] = []

    def emit(self, event: StatusEvent) -> None:
        self.events.append(event)


async def test_the_watch_reports_each_state_once_until_ready() -> None:
    lease, sink = _Contacts(first_s=0.1), _Sink()
    state = await watch_clock(lease, "10.0.0.2", ["10.0.0.2"], sink, poll_s=0.02)
    assert state is ClockState.READY
    states = [e.state for e in sink.events if isinstance(e, ClockStatus)]
    assert states == ["cold", "probing", "ready"]
    ready = sink.events[-1]
    assert isinstance(ready, ClockStatus)
    assert ready.mode == "ptp"
    assert ready.peer == "10.0.0.2"
    assert ready.after_ms is not None
    assert ready.after_ms >= (0.1 + PROBE_LOCK_S) * 1000 - 1
    assert ready.probes is not None
    assert ready.probes >= MIN_PROBES
    probing = sink.events[1]
    assert isinstance(probing, ClockStatus)
    assert probing.ready_in_ms is not None


async def test_the_watch_says_unmeasured_for_a_daemon_without_contacts() -> None:
    class _Old:
        async def contacts(self, peers: list[str]) -> dict[str, PeerContact] | None:
            return None

    sink = _Sink()
    assert await watch_clock(_Old(), "10.0.0.2", ["10.0.0.2"], sink) is ClockState.UNMEASURED
    (event,) = sink.events
    assert isinstance(event, ClockStatus)
    assert event.state == "unmeasured"


async def test_after_ready_the_watch_goes_on_and_reports_probes_that_stop() -> None:
    lease, sink = _Contacts(first_s=0.05, stop_s=0.6), _Sink()
    watch = watch_clock(
        lease,
        "10.0.0.2",
        ["10.0.0.2"],
        sink,
        poll_s=0.02,
        follow_poll_s=0.05,
        probe_lock_s=0.3,
        stall_s=0.5,
    )
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(watch, 1.6)  # it follows until cancelled
    states = [e.state for e in sink.events if isinstance(e, ClockStatus)]
    assert states == ["cold", "probing", "ready", "stalled"]
    stalled = sink.events[-1]
    assert isinstance(stalled, ClockStatus)
    assert stalled.cause is not None
    assert "stopped" in stalled.cause


async def test_a_lease_closed_after_ready_ends_the_watch_quietly() -> None:
    class _Closing(_Contacts):
        async def contacts(self, peers: list[str]) -> dict[str, PeerContact] | None:
            if time.monotonic_ns() - self.start > 0.5 * S:
                raise ConnectionResetError("daemon connection closed")
            return await super().contacts(peers)

    sink = _Sink()
    state = await watch_clock(
        _Closing(first_s=0.05),
        "10.0.0.2",
        ["10.0.0.2"],
        sink,
        poll_s=0.02,
        follow_poll_s=0.05,
        probe_lock_s=0.2,
    )
    assert state is ClockState.READY
    assert [e.state for e in sink.events if isinstance(e, ClockStatus)] == [
        "cold",
        "probing",
        "ready",
    ]
