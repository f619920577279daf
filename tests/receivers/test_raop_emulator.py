"""Tests of the RAOP receiver emulator itself, driven by hand-built bytes (no sender code):
its decoders, anchor maths, audio reconstruction and timing. RTSP and the server:
`test_raop_emulator_rtsp`."""

from __future__ import annotations

import struct

import pytest

from tests.receivers.raop_emulator_core import RaopReceiverCore
from tests.receivers.raop_emulator_wire import (
    EmulatorError,
    WireError,
    decode_alac_escape,
)
from tests.receivers.raop_handmade import (
    NOW,
    SDP_L16,
    SENDER,
    SYNC_FIRST,
    SYNC_LATER,
    alac_packet,
    audio,
    datagram,
    escape_frame,
    pcm_le,
    ramp,
    rtsp,
    session,
    status_of,
    streaming_core,
)

# ------------------------------------------------------------------ decoders and anchor math


def test_alac_escape_fixed_vector_with_size_field() -> None:
    frame = bytes.fromhex("200012000000040205fffd0000ffffc0")
    pcm = decode_alac_escape(frame, 352)
    # L 0x0102, R 0xFFFE, L 0x8000, R 0x7FFF, little-endian
    assert pcm == bytes.fromhex("0201feff0080ff7f")


def test_alac_escape_full_frame_layout() -> None:
    frame = escape_frame(ramp(0))
    assert len(frame) == 1412
    assert frame[:3] == bytes([0x20, 0x00, 0x02])
    assert decode_alac_escape(frame, 352) == pcm_le(ramp(0))


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (bytes.fromhex("000012000000040205fffd0000ffffc0"), "element type"),
        (bytes.fromhex("200012000000040205fffd0000ffffc8"), "padding"),
        (bytes.fromhex("200012000000040205fffd0000ffffc000"), "trailing"),
        (bytes.fromhex("200010000000040205fffd0000ffffc0"), "compressed"),
        (bytes.fromhex("2000120000"), "ends early"),
    ],
)
def test_alac_escape_rejects_bad_frames(frame: bytes, reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        decode_alac_escape(frame, 352)


def test_anchor_math_on_fixed_sync_packet() -> None:
    core = streaming_core()
    sync = core.stream.sync_packets[0]
    assert (sync.first, sync.rtp_latency, sync.ntp, sync.rtp_now) == (
        True,
        11800,
        0xE8000000_80000000,
        100000,
    )
    # frame 11800 - 11025 = 775 is audible at N; frame 100000 is 99225 frames = 2.25 s later
    assert core.stream.play_time_ntp(775) == 0xE8000000_80000000
    assert core.stream.play_time_ntp(775 + 22050) == 0xE8000001_00000000
    assert core.stream.play_time_ntp(100000) == 0xE8000002_C0000000
    assert core.stream.play_time_ntp(775 - 44100) == 0xE7FFFFFF_80000000


def test_anchor_math_wraps_rtp_timestamps() -> None:
    core = RaopReceiverCore()
    session(core, record=False)
    core.control_received(bytes.fromhex("90d4000700000100e80000000000000000010000"), NOW)
    # anchor frame 0x100 - 11025 wraps below zero; 0x100 itself is 11025 frames = 0.25 s later
    assert core.stream.play_time_ntp(0x100) == 0xE8000000_40000000


def test_consistent_syncs_pass_and_a_reanchor_is_caught() -> None:
    core = streaming_core()
    core.control_received(SYNC_LATER, NOW + 1)
    assert core.stream.syncs_consistent()
    assert core.errors == []
    # 2 s after the first, but 88300 frames on: 100 frames off the line
    shifted = bytes.fromhex("80d4000700018704e800000280000000000186a0")
    core.control_received(shifted, NOW + 2)
    assert not core.stream.syncs_consistent()
    assert core.stream.sync_line_deviations() == pytest.approx([0.0, 0.0, -100.0])
    assert any("re-anchors" in error for error in core.errors)


# ------------------------------------------------------------------ audio, loss, reconstruction


def test_reconstruction_heals_a_dropped_packet_with_a_d6_reply() -> None:
    core = streaming_core()
    packets = [alac_packet(i, marker=i == 0) for i in range(5)]
    assert core.audio_received(packets[0], NOW) == []
    assert core.audio_received(packets[1], NOW) == []
    assert len(core.audio_received(packets[3], NOW)) == 1
    assert core.stream.first_audio == (1000, 100000, True)
    assert core.stream.missing_frames() == [(100000 + 2 * 352, 352)]
    with pytest.raises(EmulatorError, match="gaps"):
        core.stream.reconstructed_pcm()
    # the request went out when packet 3 revealed the gap; a retry follows 100 ms later
    assert [d.socket for d in core.poll(NOW + 0.05)] == ["timing"]
    retry = [d for d in core.poll(NOW + 0.11) if d.socket == "control"]
    assert [(d.addr, d.data) for d in retry] == [
        ((SENDER, 6001), bytes.fromhex("80d5000203ea0001"))
    ]
    assert core.control_received(b"\x80\xd6\x00\x01" + packets[2], NOW + 0.12) == []
    core.audio_received(packets[4], NOW + 0.13)
    assert core.stream.missing_frames() == []
    assert core.stream.reconstructed_pcm() == b"".join(pcm_le(ramp(i)) for i in range(5))
    stats = core.stream.loss_stats()
    assert (stats.requested, stats.healed, stats.still_missing) == (1, 1, 0)
    assert core.errors == []


def test_gap_triggers_an_immediate_resend_request() -> None:
    core = streaming_core()
    core.audio_received(alac_packet(0, marker=True), NOW)
    out = core.audio_received(alac_packet(3), NOW)
    assert [(d.socket, d.addr, d.data) for d in out] == [
        ("control", (SENDER, 6001), bytes.fromhex("80d5000103e90002"))
    ]


def test_resend_gives_up_after_three_attempts_and_counts_still_missing() -> None:
    core = streaming_core()
    core.audio_received(alac_packet(0, marker=True), NOW)
    requests = len(core.audio_received(alac_packet(2), NOW))
    for step in range(1, 10):
        requests += sum(d.socket == "control" for d in core.poll(NOW + 0.1 * step + 0.001))
    assert requests == 3
    assert core.stream.loss_stats().still_missing == 1


def test_resent_packet_on_the_audio_port_also_heals() -> None:
    core = streaming_core()
    core.audio_received(alac_packet(0, marker=True), NOW)
    core.audio_received(alac_packet(2), NOW)
    core.audio_received(alac_packet(1), NOW + 0.01)  # OwnTone style: the original packet again
    core.audio_received(alac_packet(1), NOW + 0.02)
    stats = core.stream.loss_stats()
    assert (stats.healed, stats.still_missing, stats.duplicates) == (1, 0, 1)
    assert core.stream.missing_frames() == []


def test_seeded_drop_rate_is_deterministic() -> None:
    def run(seed: int) -> tuple[int, list[bytes]]:
        core = streaming_core(drop_rate=0.3, drop_seed=seed)
        sent: list[bytes] = []
        for index in range(40):
            sent += [
                d.data for d in core.audio_received(alac_packet(index, marker=index == 0), NOW)
            ]
        return core.stream.loss_stats().dropped, sent

    dropped, requests = run(7)
    assert 0 < dropped < 40
    assert run(7) == (dropped, requests)
    assert len(requests) >= 1
    assert all(request[:2] == b"\x80\xd5" for request in requests)


def test_l16_stream_is_decoded_to_little_endian() -> None:
    core = RaopReceiverCore()
    session(core, sdp=SDP_L16)
    core.control_received(SYNC_FIRST, NOW)
    core.audio_received(audio(1000, 100000, bytes.fromhex("0102fffe80007fff"), marker=True), NOW)
    assert core.stream.reconstructed_pcm() == bytes.fromhex("0201feff0080ff7f")
    assert core.errors == []


@pytest.mark.parametrize(
    ("datagrams", "expected"),
    [
        ([("audio", alac_packet(0, marker=True))], "before any sync"),
        ([("control", SYNC_LATER)], "lacks the 0x90"),
        ([("control", SYNC_FIRST), ("audio", alac_packet(0))], "lacks the marker"),
        ([("control", SYNC_FIRST), ("audio", alac_packet(1, marker=True))], "!= RECORD rtptime"),
        ([("control", SYNC_FIRST[:16] + bytes.fromhex("000186a1"))], "first sync rtp_now"),
        ([("control", b"\x80\xd4\x00\x04" + SYNC_FIRST[4:])], "want 7"),
        ([("timing", bytes(32))], "not a timing reply"),
        ([("audio", b"\x80\x60\x00")], "audio port"),
    ],
)
def test_stream_strictness(datagrams: list[tuple[str, bytes]], expected: str) -> None:
    core = RaopReceiverCore()
    session(core)
    for kind, data in datagrams:
        datagram(core, kind, data)
    assert any(expected in error for error in core.errors), core.errors


def test_audio_before_record_is_an_error() -> None:
    core = RaopReceiverCore()
    session(core, record=False)
    core.audio_received(alac_packet(0, marker=True), NOW)
    assert core.errors == ["audio packet outside RECORD"]
    assert core.stream.audio_packets == []


def test_flush_starts_a_segment_that_needs_a_new_first_sync_and_marker() -> None:
    core = streaming_core()
    for index in range(2):
        core.audio_received(alac_packet(index, marker=index == 0), NOW)
    flush = rtsp("FLUSH", 9, {"RTP-Info": "seq=1002;rtptime=100704"})
    assert status_of(core.rtsp_received(1, flush, NOW).data) == 200
    assert [(f.seq, f.rtptime) for f in core.flushes] == [(1002, 100704)]
    core.control_received(SYNC_LATER, NOW)  # 0x80, not 0x90
    core.audio_received(alac_packet(5), NOW)  # no marker
    assert any("segment 1 lacks the 0x90" in error for error in core.errors)
    assert any("segment 1 lacks the marker" in error for error in core.errors)


def test_clean_flush_and_resume_reconstructs_both_segments() -> None:
    core = streaming_core()
    for index in range(2):
        core.audio_received(alac_packet(index, marker=index == 0), NOW)
    core.rtsp_received(1, rtsp("FLUSH", 9, {"RTP-Info": "seq=1005;rtptime=101760"}), NOW)
    core.audio_received(alac_packet(3), NOW)  # in flight from before the FLUSH: discarded
    resync = bytes.fromhex("90d400070000ad20e80000058000000000018d80")  # rtp_now 101760
    core.control_received(resync, NOW)
    core.audio_received(alac_packet(5, marker=True), NOW)
    core.audio_received(alac_packet(6), NOW)
    assert core.errors == []
    assert core.stream.discarded_after_flush == 1
    expected = [pcm_le(ramp(i)) for i in (0, 1, 5, 6)]
    assert core.stream.reconstructed_pcm() == b"".join(expected)
    assert core.stream.play_time_ntp(0xAD20 - 11025) == 0xE8000005_80000000


# ------------------------------------------------------------------ timing


def test_timing_requests_format_schedule_and_reply_validation() -> None:
    core = RaopReceiverCore(ports=(7000, 7001, 7002))
    session(core, record=False)
    first = core.poll(NOW)
    assert [(d.socket, d.addr, d.data) for d in first] == [
        ("timing", (SENDER, 6002), bytes.fromhex("80d20007" + "00" * 20 + "e8fe6f8080000000"))
    ]
    assert core.next_deadline() == pytest.approx(NOW + 0.3)
    assert core.poll(NOW + 0.1) == []
    assert len(core.poll(NOW + 0.3)) == 1
    assert len(core.poll(NOW + 0.6)) == 1
    assert core.next_deadline() == pytest.approx(NOW + 3.6)
    # reply: sender clock 0.25 s ahead, 1 ms each way, 1 ms in the sender
    origin = first[0].data[24:]
    receive = struct.pack(">II", 0xE8FE6F80, 0x80000000 + int(0.251 * 2**32))
    transmit = struct.pack(">II", 0xE8FE6F80, 0x80000000 + int(0.252 * 2**32))
    core.timing_received(b"\x80\xd3\x00\x07" + bytes(4) + origin + receive + transmit, NOW + 0.003)
    assert len(core.stream.timing) == 1
    assert core.stream.timing[0].offset_s == pytest.approx(0.25, abs=1e-6)
    assert core.stream.timing[0].rtt_s == pytest.approx(0.002, abs=1e-6)
    assert core.stream.offset_estimate() == pytest.approx(0.25, abs=1e-6)
    core.timing_received(b"\x80\xd3\x00\x07" + bytes(4) + origin + receive + transmit, NOW + 0.01)
    assert any("origin matches none" in error for error in core.errors)
