"""The timeline math behind the start promise: sample k plays at T + k/44100, on one line."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from airplay_provider.protocol.backlog import Backlog, SentPacket
from airplay_provider.protocol.rtp import parse_sync_packet, sync_packet
from airplay_provider.protocol.schedule import Timeline
from airplay_provider.protocol.timing import ntp_diff_ns, ntp_from_unix_ns

T0 = ntp_from_unix_ns(1_750_000_000 * 10**9)


def receiver_play_ntp(rtp_latency: int, ntp: int, frame_rtp: int) -> float:
    """Independent receiver-side reading of a sync packet (docs/protocol.md A.12).

    The receiver plays frame `rtp_latency - 11025` at `ntp`; any frame X at
    ntp + (X - anchor)/44100 seconds. Returned as float seconds on the NTP scale.
    """
    anchor = (rtp_latency - 11025) & 0xFFFFFFFF
    delta = (frame_rtp - anchor) & 0xFFFFFFFF
    if delta >= 2**31:
        delta -= 2**32
    return ntp / 2**32 + delta / 44100


def test_sample_zero_plays_at_start() -> None:
    line = Timeline(start_ntp=T0, first_rtp=1000, latency_frames=44100)
    assert line.play_ntp_of(0) == T0
    assert line.rtp_of(0) == 1000
    assert line.play_ntp_of(44100) == T0 + 2**32  # exactly one second later


@given(
    first_rtp=st.integers(0, 2**32 - 1),
    latency=st.integers(0, 3 * 44100),
    next_sample=st.integers(0, 10**8),
    probe=st.integers(-(10**6), 10**8),
)
def test_sync_packet_describes_the_same_line(
    first_rtp: int, latency: int, next_sample: int, probe: int
) -> None:
    line = Timeline(start_ntp=T0, first_rtp=first_rtp, latency_frames=latency)
    fields = line.sync_fields(next_sample)
    # Round-trip through the wire format, then read it as a receiver would.
    parsed = parse_sync_packet(
        sync_packet(
            first=False, rtp_latency=fields.rtp_latency, ntp=fields.ntp, rtp_now=fields.rtp_now
        )
    )
    assert parsed.rtp_now == line.rtp_of(next_sample)
    # Only probe within ±2**31 frames of the anchor (RTP timestamps are modular).
    sample = next_sample + probe % 10**6
    got = receiver_play_ntp(parsed.rtp_latency, parsed.ntp, line.rtp_of(sample))
    want = line.play_ntp_of(sample) / 2**32
    assert abs(got - want) < 1e-6  # far below one frame (22.7 µs)


def test_restart_after_pause_moves_only_the_anchor() -> None:
    line = Timeline(start_ntp=T0, first_rtp=5, latency_frames=0)
    line.restart(sample=1000, rtp=99999, ntp=T0 + 10 * 2**32)
    assert line.rtp_of(1000) == 99999
    assert line.play_ntp_of(1000) == T0 + 10 * 2**32
    assert line.play_ntp_of(1000 + 44100) == T0 + 11 * 2**32


def test_sample_at_inverts_play_time() -> None:
    line = Timeline(start_ntp=T0, first_rtp=0, latency_frames=0)
    for sample in (0, 1, 351, 352, 44099, 44100, 10**7):
        assert line.sample_at(line.play_ntp_of(sample)) == sample
    before = line.sample_at(T0 - 2**32)
    assert before == -44100


def test_send_time_is_one_latency_early() -> None:
    line = Timeline(start_ntp=T0, first_rtp=0, latency_frames=22050)
    assert ntp_diff_ns(line.play_ntp_of(0), line.send_ntp_of(0)) == 500_000_000


def _packet(seq: int, first_sample: int) -> SentPacket:
    pcm = bytes([seq & 0xFF]) * (352 * 4)
    return SentPacket(seq=seq, first_sample=first_sample, wire=b"w%d" % seq, pcm=pcm)


def test_backlog_lookup_across_wrap() -> None:
    backlog = Backlog(1024)
    for index in range(2000):
        seq = (65000 + index) & 0xFFFF
        backlog.add(_packet(seq, index * 352))
    newest = (65000 + 1999) & 0xFFFF
    entry = backlog.get(newest)
    assert entry is not None
    assert entry.first_sample == 1999 * 352
    assert backlog.get((newest - 1023) & 0xFFFF) is not None
    assert backlog.get((newest - 1024) & 0xFFFF) is None  # evicted
    assert backlog.get((newest + 1) & 0xFFFF) is None


def test_backlog_pcm_from_rebuilds_unplayed_input() -> None:
    backlog = Backlog(16)
    for index in range(10):
        backlog.add(_packet(index, index * 352))
    first, pcm = backlog.pcm_from(3 * 352 + 100) or (None, b"")
    assert first == 3 * 352 + 100
    assert len(pcm) == (10 * 352 - first) * 4
    assert pcm[:4] == bytes([3]) * 4
    assert pcm[-4:] == bytes([9]) * 4
    assert backlog.pcm_from(10 * 352) is None  # nothing sent from there on
    backlog.clear()
    assert backlog.get(5) is None
