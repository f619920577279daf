"""cliap2's side of following a receiver's own clock: the watch hands an own-clock receiver to
the follower, which reports `locking` then `tracking` and translates anchors once locked."""

from __future__ import annotations

import asyncio
import time

from airplay_provider.protocol.ptp_follow import PeerClockReport, Translation
from airplay_provider.protocol.ptp_readiness import ClockState, PeerContact
from airplay_provider.protocol.streamer_status import (
    ClockStatus,
    StatusEvent,
    format_status,
    parse_status,
)
from airplay_provider.session.clock import clock_final, describe_clock
from airplay_provider.streamer.clock_follow import PeerClock, follow_clock
from airplay_provider.streamer.clock_watch import watch_clock

NS = 1_000_000_000
HOMEPOD = 0x00EE_EEFF_FE00_0001
OURS = 0x1111_2222_3333_4444


class _Sink:
    def __init__(self) -> None:
        self.events: list[StatusEvent] = []
        self.tracking = asyncio.Event()

    def emit(self, event: StatusEvent) -> None:
        self.events.append(event)
        if isinstance(event, ClockStatus) and event.state == "tracking":
            self.tracking.set()

    def states(self) -> list[str]:
        return [e.state for e in self.events if isinstance(e, ClockStatus)]


class _Daemon:
    """A lease: the receiver announces its own clock (never probes); once followed, the daemon
    reports exchanges, locked after `lock_after` answers."""

    def __init__(self, lock_after: int = 3, *, can_follow: bool = True) -> None:
        self.followed: list[list[str]] = []
        self.lock_after = lock_after
        self.can_follow = can_follow

    async def contacts(self, peers: list[str]) -> dict[str, PeerContact] | None:
        contact = PeerContact()
        contact.heard_announce(time.monotonic_ns(), awakening=False)  # priority1 248
        return {peers[0]: contact}

    async def follow(self, peers: list[str]) -> dict[str, PeerClockReport]:
        self.followed.append(peers)
        if not self.can_follow:
            return {}
        asked = len(self.followed)
        locked = asked > self.lock_after
        translation = Translation(ref_ns=0, offset_ns=-4 * NS, rate_ppb=40_000)
        return {
            peer: PeerClockReport(
                HOMEPOD, asked * 8, locked, translation if asked > 1 else None, 4_200
            )
            for peer in peers
        }


async def _follow(daemon: _Daemon, sink: _Sink, clock: PeerClock) -> ClockState:
    async def follow() -> ClockState:
        return await follow_clock(daemon, "10.0.0.2", ["10.0.0.2"], sink, clock, lock_wait_s=0.5)

    return await watch_clock(
        daemon, "10.0.0.2", ["10.0.0.2"], sink, poll_s=0.01, stall_s=0.05, on_own_clock=follow
    )


async def test_a_receiver_keeping_its_own_clock_is_followed_not_reported_as_own_clock() -> None:
    daemon, sink, clock = _Daemon(), _Sink(), PeerClock()
    assert clock.network_time(5 * NS, OURS) == (5 * NS, OURS)  # ours until it is locked
    task = asyncio.ensure_future(_follow(daemon, sink, clock))
    try:
        await asyncio.wait_for(sink.tracking.wait(), 3.0)
    finally:
        task.cancel()
    assert daemon.followed[0] == ["10.0.0.2"]
    assert "own_clock" not in sink.states()
    assert sink.states()[-2:] == ["locking", "tracking"]
    assert sink.states().count("locking") == 1  # a rate fitted while locking is no news
    tracking = sink.events[-1]
    assert isinstance(tracking, ClockStatus)
    assert tracking.offset_us == -4_000_000
    assert tracking.drift_ppb == 40_000
    assert tracking.error_us == 5  # the fit's error bound, rounded up
    assert clock_final(tracking)  # the session may schedule on it
    assert "PTP clock tracking" in describe_clock("Kitchen", tracking)
    line = format_status(tracking)
    assert "state=tracking" in line
    assert "drift_ppb=40000 error_us=5" in line
    assert parse_status(line) == tracking
    # 10 s after the translation's reference: 4 s behind, plus 40 ppm of 10 s (400 µs)
    assert clock.network_time(10 * NS, OURS) == (6 * NS + 400_000, HOMEPOD)
    # an anchor in force for 0.125 s is centred on its drift: + 40 ppm x 62.5 ms = 2.5 µs
    assert clock.network_time(10 * NS, OURS, governs_ns=NS // 8)[0] == 6 * NS + 402_500


async def test_a_daemon_that_cannot_follow_leaves_it_own_clock() -> None:
    daemon, sink, clock = _Daemon(can_follow=False), _Sink(), PeerClock()
    assert await _follow(daemon, sink, clock) is ClockState.OWN_CLOCK
    assert sink.states()[-1] == "own_clock"
    assert not clock.locked


async def test_a_clock_that_never_locks_ends_as_own_clock() -> None:
    daemon, sink, clock = _Daemon(lock_after=10_000), _Sink(), PeerClock()
    assert await _follow(daemon, sink, clock) is ClockState.OWN_CLOCK
    assert sink.states()[-2:] == ["locking", "own_clock"]
    last = sink.events[-1]
    assert isinstance(last, ClockStatus)
    assert last.cause is not None
    assert "never reached us" in last.cause
