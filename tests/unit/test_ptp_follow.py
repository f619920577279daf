"""The servo that follows a receiver's own PTP clock: fake exchanges of a peer clock with a known
offset and drift, network jitter, outliers and a step; the estimate must land on the truth."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from airplay_provider.protocol.ptp_follow import (
    LOCK_SAMPLES,
    NS,
    ClockFollower,
    Exchange,
    Translation,
    keeps_own_clock,
)


@dataclass
class PeerClock:
    """peer = ours + offset + drift_ppb * (ours - epoch) / 1e9."""

    offset_ns: int
    drift_ppb: int
    epoch_ns: int = 0

    def at(self, our_ns: int) -> int:
        return our_ns + self.offset_ns + self.drift_ppb * (our_ns - self.epoch_ns) // NS


def _exchange(
    peer: PeerClock, our_ns: int, rng: random.Random, *, jitter_ns: int = 30_000
) -> Exchange:
    """Sync at our_ns (leaves the peer at its clock's reading), Delay_Req 1 ms after it."""
    up = 100_000 + rng.randrange(jitter_ns)  # peer -> us
    down = 100_000 + rng.randrange(jitter_ns)  # us -> peer
    t1 = peer.at(our_ns)
    t2 = our_ns + up
    t3 = t2 + 1_000_000
    t4 = peer.at(t3 + down)
    return Exchange(t1, t2, t3, t4)


def _run(
    follower: ClockFollower, peer: PeerClock, seconds: float, start_ns: int = 10 * NS, **kw: int
) -> int:
    rng = random.Random(5)
    now = start_ns
    for _ in range(round(seconds * 8)):  # ~8 exchanges per second, as the HomePod's Syncs
        follower.add(_exchange(peer, now, rng, **kw))
        now += NS // 8
    return now


def test_one_exchange_gives_the_offset_and_round_trip_exactly() -> None:
    exchange = Exchange(t1=5_000_000_100, t2=1_000_000_200, t3=1_000_001_200, t4=5_000_001_300)
    assert exchange.offset_ns == 4_000_000_000  # ((t1 - t2) + (t4 - t3)) / 2, 100 ns each way
    assert exchange.round_trip_ns == 200
    assert exchange.at_ns == 1_000_000_700


def test_offset_of_seconds_and_40_ppm_drift_are_found_within_5_us() -> None:
    peer = PeerClock(offset_ns=-7_345_678_901, drift_ppb=40_000)
    follower = ClockFollower()
    now = _run(follower, peer, 6.0)
    assert follower.locked
    assert follower.translation is not None
    assert abs(follower.translation.rate_ppb - 40_000) < 3_000
    for ahead in (0, NS, 3 * NS):  # and it extrapolates a few seconds without drifting off
        assert abs(follower.to_peer(now + ahead) - peer.at(now + ahead)) < 5_000 + ahead // 100_000


def test_it_is_locked_once_enough_exchanges_give_a_rate() -> None:
    peer = PeerClock(offset_ns=3 * NS, drift_ppb=0)
    follower = ClockFollower()
    rng = random.Random(1)
    for index in range(8):  # 4+ exchanges, but over less than RATE_SPAN_S
        follower.add(_exchange(peer, NS + index * NS // 8, rng))
        assert not follower.locked
        assert follower.translation is not None  # (an offset already)
    follower.add(_exchange(peer, NS + 9 * NS // 8, rng))
    assert follower.locked
    assert len(follower.samples) > LOCK_SAMPLES
    with pytest.raises(ValueError, match="no exchange"):
        ClockFollower().to_peer(0)


def test_the_quick_exchanges_decide_and_slow_ones_are_outvoted() -> None:
    """One exchange in four waits 5 ms in a queue one way: the fit must not move by much."""
    peer = PeerClock(offset_ns=2 * NS, drift_ppb=-20_000)
    follower = ClockFollower()
    rng = random.Random(9)
    now = NS
    for index in range(64):
        exchange = _exchange(peer, now, rng)
        if index % 4 == 3:
            exchange = Exchange(exchange.t1, exchange.t2 + 5_000_000, exchange.t3, exchange.t4)
        follower.add(exchange)
        now += NS // 8
    assert abs(follower.to_peer(now) - peer.at(now)) < 10_000


def test_a_wild_residual_is_dropped_as_an_outlier() -> None:
    peer = PeerClock(offset_ns=NS, drift_ppb=0)
    follower = ClockFollower()
    now = _run(follower, peer, 2.0)
    rng = random.Random(3)
    bad = _exchange(peer, now, rng)
    follower.add(Exchange(bad.t1 + 400_000, bad.t2, bad.t3, bad.t4 + 400_000))  # quick but off
    assert follower.outliers >= 1
    assert abs(follower.to_peer(now) - peer.at(now)) < 10_000


def test_impossible_timestamps_are_ignored() -> None:
    follower = ClockFollower()
    follower.add(Exchange(t1=1_000_000, t2=10, t3=20, t4=500))  # round trip of -1 ms
    assert follower.translation is None
    assert follower.outliers == 1


def test_a_step_of_the_peer_clock_is_followed_after_a_few_exchanges() -> None:
    peer = PeerClock(offset_ns=NS, drift_ppb=10_000)
    follower = ClockFollower()
    now = _run(follower, peer, 4.0)
    stepped = PeerClock(offset_ns=peer.offset_ns + 250_000_000, drift_ppb=10_000)
    now = _run(follower, stepped, 1.0, start_ns=now)
    assert follower.steps == 1
    assert abs(follower.to_peer(now) - stepped.at(now)) < 20_000


def test_a_single_off_exchange_is_no_step() -> None:
    peer = PeerClock(offset_ns=NS, drift_ppb=0)
    follower = ClockFollower()
    now = _run(follower, peer, 3.0)
    rng = random.Random(4)
    off = _exchange(peer, now, rng)
    follower.add(Exchange(off.t1 + 5_000_000, off.t2, off.t3, off.t4 + 5_000_000))
    now = _run(follower, peer, 1.0, start_ns=now + NS // 8)
    assert follower.steps == 0
    assert abs(follower.to_peer(now) - peer.at(now)) < 10_000


def test_messages_pair_into_exchanges() -> None:
    """Sync (t2) + Follow_Up (t1) + our Delay_Req (t3) + its Delay_Resp (t4), by sequence id."""
    follower = ClockFollower()
    assert not follower.delay_req_sent(1, 100)  # no Sync pair yet: not counted
    follower.sync(7, arrived_ns=1_000_000_200)
    follower.follow_up(7, origin_ns=5_000_000_100)
    assert follower.delay_req_sent(1, 1_000_001_200)
    assert not follower.delay_resp(2, 5_000_001_300)  # not our request
    assert follower.delay_resp(1, 5_000_001_300)
    assert follower.samples == [
        Exchange(5_000_000_100, 1_000_000_200, 1_000_001_200, 5_000_001_300)
    ]


def test_translation_round_trips_and_crosses_the_wire() -> None:
    translation = Translation(ref_ns=50 * NS, offset_ns=-3 * NS, rate_ppb=40_000)
    for our in (0, 50 * NS, 3600 * NS):
        assert abs(translation.to_ours(translation.to_peer(our)) - our) <= 1
    assert Translation.from_wire(translation.to_wire()) == translation
    with pytest.raises(ValueError):
        Translation.from_wire([1, 2])


def test_a_standalone_homepod_is_known_by_its_txt() -> None:
    standalone = {"model": "AudioAccessory5,1", "igl": "1", "gid": "X"}
    assert keeps_own_clock(standalone)
    assert not keeps_own_clock({**standalone, "pgid": "ABC"})  # in an Apple TV group
    assert not keeps_own_clock({**standalone, "tsid": "ABC"})  # stereo pair
    assert not keeps_own_clock({**standalone, "igl": "0"})
    assert not keeps_own_clock({**standalone, "model": "Sonos Era 100"})
    assert keeps_own_clock({"igl": "1"})  # no model in the TXT: the flags decide
