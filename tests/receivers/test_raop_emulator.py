"""Tests of the RAOP receiver emulator itself, driven by hand-built bytes (no sender code)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.receivers.raop_emulator import RaopEmulator
from tests.receivers.raop_emulator_core import RaopReceiverCore
from tests.receivers.raop_emulator_wire import (
    EmulatorError,
    WireError,
    decode_alac_escape,
)

NOW = 1_700_000_000.5  # NTP 0xE8FE6F80.80000000 (3908988800 s + 0.5)
SENDER = "127.0.0.1"
SDP_ALAC = (
    "v=0\r\no=iTunes 1 0 IN IP4 127.0.0.1\r\ns=iTunes\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 0 RTP/AVP 96\r\na=rtpmap:96 AppleLossless\r\n"
    "a=fmtp:96 352 0 16 40 10 14 2 255 0 0 44100\r\n"
)
SDP_L16 = "v=0\r\ns=iTunes\r\nt=0 0\r\nm=audio 0 RTP/AVP 96\r\na=rtpmap:96 L16/44100/2\r\n"
TRANSPORT = "RTP/AVP/UDP;unicast;interleaved=0-1;mode=record;control_port=6001;timing_port=6002"
# first sync: 0x90 0xD4 0x0007, rtp_latency 11800, NTP E8000000.80000000, rtp_now 100000
SYNC_FIRST = bytes.fromhex("90d4000700002e18e800000080000000000186a0")
SYNC_LATER = bytes.fromhex("80d400070000da5ce800000180000000000232e4")  # +1 s


# ------------------------------------------------------------------ hand-made encoders


def rtsp(
    method: str, cseq: int | None, headers: dict[str, str] | None = None, body: str = ""
) -> bytes:
    lines = [f"{method} rtsp://127.0.0.1/1234 RTSP/1.0"]
    if cseq is not None:
        lines.append(f"CSeq: {cseq}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def announce(sdp: str = SDP_ALAC, content_type: str = "application/sdp") -> bytes:
    return rtsp("ANNOUNCE", 1, {"Content-Type": content_type}, sdp)


def status_of(response: bytes) -> int:
    match = re.match(rb"RTSP/1\.0 (\d{3}) ", response)
    assert match, response
    return int(match.group(1))


def header_of(response: bytes, name: str) -> str | None:
    match = re.search(rb"\r\n" + name.encode() + rb": ([^\r]*)\r\n", response)
    return None if match is None else match.group(1).decode()


def escape_frame(samples: list[tuple[int, int]]) -> bytes:
    """An ALAC escape frame built from a '0'/'1' string (independent of the decoder)."""
    bits = "001" + "0000" + "0" * 12 + "0" + "00" + "1"
    for left, right in samples:
        bits += format(left & 0xFFFF, "016b") + format(right & 0xFFFF, "016b")
    bits += "111"
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def ramp(packet_index: int) -> list[tuple[int, int]]:
    base = packet_index * 352
    return [((base + i) % 30000, -((base + i) % 30000)) for i in range(352)]


def pcm_le(samples: list[tuple[int, int]]) -> bytes:
    return b"".join(struct.pack("<hh", left, right) for left, right in samples)


def audio(seq: int, rtptime: int, payload: bytes, *, marker: bool = False) -> bytes:
    return (
        bytes([0x80, 0xE0 if marker else 0x60])
        + struct.pack(">HII", seq, rtptime, 0xABCD)
        + payload
    )


def alac_packet(index: int, *, marker: bool = False) -> bytes:
    return audio(1000 + index, 100000 + 352 * index, escape_frame(ramp(index)), marker=marker)


# ------------------------------------------------------------------ helpers


def session(core: RaopReceiverCore, *, sdp: str = SDP_ALAC, record: bool = True) -> None:
    """OPTIONS, ANNOUNCE, SETUP (and RECORD seq=1000 rtptime=100000) on connection 1."""
    core.connection_made(1, SENDER)
    steps = [
        rtsp("OPTIONS", 1),
        rtsp("ANNOUNCE", 2, {"Content-Type": "application/sdp"}, sdp),
        rtsp("SETUP", 3, {"Transport": TRANSPORT}),
    ]
    if record:
        steps.append(rtsp("RECORD", 4, {"Range": "npt=0-", "RTP-Info": "seq=1000;rtptime=100000"}))
    for step in steps:
        assert status_of(core.rtsp_received(1, step, NOW).data) == 200


def streaming_core(drop_rate: float = 0.0, drop_seed: int = 0) -> RaopReceiverCore:
    core = RaopReceiverCore(ports=(7000, 7001, 7002), drop_rate=drop_rate, drop_seed=drop_seed)
    session(core)
    core.control_received(SYNC_FIRST, NOW)
    return core


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
        if kind == "audio":
            core.audio_received(data, NOW)
        elif kind == "control":
            core.control_received(data, NOW)
        else:
            core.timing_received(data, NOW)
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


# ------------------------------------------------------------------ RTSP strictness


def test_options_answer_echoes_cseq_and_lists_methods() -> None:
    core = RaopReceiverCore()
    core.connection_made(1, SENDER)
    response = core.rtsp_received(1, rtsp("OPTIONS", 42), NOW).data
    assert response.startswith(b"RTSP/1.0 200 OK\r\nCSeq: 42\r\n")
    assert "SET_PARAMETER" in (header_of(response, "Public") or "")


@pytest.mark.parametrize(
    ("requests", "status"),
    [
        ([rtsp("OPTIONS", None)], 400),
        ([rtsp("PLAY", 1)], 501),
        ([rtsp("SETUP", 1, {"Transport": TRANSPORT})], 455),
        ([announce(), rtsp("RECORD", 2)], 455),
        ([announce("m=audio 0 RTP/AVP 96\r\n")], 400),
        ([announce(SDP_ALAC.replace("AppleLossless", "mpeg4-generic/44100/2"))], 400),
        ([announce(SDP_ALAC.replace(" 16 40 ", " 24 40 "))], 400),
        ([announce(SDP_L16 + "a=fmtp:96 352\r\n")], 400),  # the shairport-sync trap
        ([announce(SDP_ALAC + "a=rsaaeskey:AAAA\r\n")], 400),  # plain RAOP only
        ([announce(SDP_ALAC, "text/plain")], 400),
        ([announce(SDP_L16)], 200),
    ],
)
def test_rtsp_rejections(requests: list[bytes], status: int) -> None:
    core = RaopReceiverCore()
    core.connection_made(1, SENDER)
    outputs = [core.rtsp_received(1, request, NOW) for request in requests]
    assert status_of(outputs[-1].data) == status
    assert not outputs[-1].close
    if status == 400:
        assert header_of(outputs[-1].data, "CSeq") in (None, "1")


@pytest.mark.parametrize(
    "transport",
    [
        "RTP/AVP/UDP;unicast;mode=record;timing_port=6002",
        "RTP/AVP/UDP;unicast;mode=record;control_port=6001",
        "RTP/AVP/UDP;unicast;mode=record;control_port=abc;timing_port=6002",
        "RTP/AVP/TCP;unicast;mode=record;control_port=6001;timing_port=6002",
    ],
)
def test_setup_transport_needs_control_and_timing_ports(transport: str) -> None:
    core = RaopReceiverCore()
    core.connection_made(1, SENDER)
    core.rtsp_received(1, announce(), NOW)
    response = core.rtsp_received(1, rtsp("SETUP", 2, {"Transport": transport}), NOW).data
    assert status_of(response) == 400
    assert header_of(response, "CSeq") == "2"


def test_setup_answers_the_receiver_ports() -> None:
    core = RaopReceiverCore(ports=(7000, 7001, 7002))
    core.connection_made(1, SENDER)
    core.rtsp_received(1, announce(), NOW)
    response = core.rtsp_received(1, rtsp("SETUP", 2, {"Transport": TRANSPORT}), NOW).data
    transport = header_of(response, "Transport") or ""
    assert "server_port=7000;control_port=7001;timing_port=7002" in transport
    assert header_of(response, "Session") == "1"
    record = rtsp("RECORD", 3, {"RTP-Info": "seq=5;rtptime=6"})
    assert header_of(core.rtsp_received(1, record, NOW).data, "Audio-Latency") == "11025"
    assert (core.stream.record_seq, core.stream.record_rtptime) == (5, 6)


def digest(method: str, uri: str, nonce: str, password: str, user: str = "iTunes") -> str:
    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    response = md5(f"{md5(f'{user}:raop:{password}')}:{nonce}:{md5(f'{method}:{uri}')}")
    return (
        f'Digest username="{user}", realm="raop", nonce="{nonce}", '
        f'uri="{uri}", response="{response}"'
    )


def test_password_digest_challenge() -> None:
    core = RaopReceiverCore(password="secret")
    core.connection_made(1, SENDER)
    uri = "rtsp://127.0.0.1/1234"
    first = core.rtsp_received(1, rtsp("OPTIONS", 1), NOW).data
    assert status_of(first) == 401
    challenge = re.fullmatch(
        r'Digest realm="raop", nonce="([^"]+)"', header_of(first, "WWW-Authenticate") or ""
    )
    assert challenge
    nonce = challenge.group(1)
    wrong = rtsp("OPTIONS", 2, {"Authorization": digest("OPTIONS", uri, nonce, "wrong")})
    assert status_of(core.rtsp_received(1, wrong, NOW).data) == 401
    stale = rtsp("OPTIONS", 3, {"Authorization": digest("OPTIONS", uri, "bm9uY2U=", "secret")})
    assert status_of(core.rtsp_received(1, stale, NOW).data) == 401
    right = rtsp("OPTIONS", 4, {"Authorization": digest("OPTIONS", uri, nonce, "secret")})
    assert status_of(core.rtsp_received(1, right, NOW).data) == 200
    assert status_of(core.rtsp_received(1, rtsp("OPTIONS", 5), NOW).data) == 200


def test_second_sender_is_busy_until_teardown() -> None:
    core = RaopReceiverCore()
    session(core)
    core.connection_made(2, SENDER)
    assert status_of(core.rtsp_received(2, announce(), NOW).data) == 453
    assert status_of(core.rtsp_received(2, rtsp("TEARDOWN", 2), NOW).data) == 453
    teardown = core.rtsp_received(1, rtsp("TEARDOWN", 9), NOW + 5)
    assert status_of(teardown.data) == 200
    assert teardown.close
    assert header_of(teardown.data, "Connection") == "close"
    assert core.teardown_at == NOW + 5
    assert status_of(core.rtsp_received(2, announce(), NOW).data) == 200


@pytest.mark.parametrize(
    ("body", "status", "volumes"),
    [
        ("volume: -11.123877\r\n", 200, [-11.123877]),
        ("volume: -144.000000\r\n", 200, [-144.0]),
        ("volume: 0.000000\r\n", 200, [0.0]),
        ("volume: -30.5\r\n", 400, []),
        ("volume: 1\r\n", 400, []),
        ("volume: loud\r\n", 400, []),
        ("volume: nan\r\n", 400, []),
    ],
)
def test_set_parameter_volume(body: str, status: int, volumes: list[float]) -> None:
    core = RaopReceiverCore()
    session(core)
    request = rtsp("SET_PARAMETER", 7, {"Content-Type": "text/parameters"}, body)
    assert status_of(core.rtsp_received(1, request, NOW).data) == status
    assert core.volumes == volumes


def test_set_parameter_metadata_artwork_progress_and_get_volume() -> None:
    core = RaopReceiverCore()
    session(core)
    items = b"minm\x00\x00\x00\x05Title" + b"asar\x00\x00\x00\x06Artist"
    dmap = b"mlit" + struct.pack(">I", len(items)) + items
    head = (
        b"SET_PARAMETER rtsp://127.0.0.1/1234 RTSP/1.0\r\nCSeq: 7\r\n"
        b"Content-Type: application/x-dmap-tagged\r\nRTP-Info: rtptime=123\r\n"
    )
    request = head + f"Content-Length: {len(dmap)}\r\n\r\n".encode() + dmap
    assert status_of(core.rtsp_received(1, request, NOW).data) == 200
    assert core.metadata[0].rtptime == 123
    assert (core.metadata[0].text("minm"), core.metadata[0].text("asar")) == ("Title", "Artist")
    art = rtsp("SET_PARAMETER", 8, {"Content-Type": "image/jpeg", "RTP-Info": "rtptime=5"}, "JPEG")
    assert status_of(core.rtsp_received(1, art, NOW).data) == 200
    assert [(a.content_type, a.data, a.rtptime) for a in core.artwork] == [
        ("image/jpeg", b"JPEG", 5)
    ]
    progress = rtsp("SET_PARAMETER", 9, {"Content-Type": "text/parameters"}, "progress: 1/2/3\r\n")
    assert status_of(core.rtsp_received(1, progress, NOW).data) == 200
    assert core.progress == [(1, 2, 3)]
    bad = rtsp(
        "SET_PARAMETER", 10, {"Content-Type": "application/x-dmap-tagged"}, "mlit\x00\x00\x01"
    )
    assert status_of(core.rtsp_received(1, bad, NOW).data) == 400
    volume = rtsp("SET_PARAMETER", 11, {"Content-Type": "text/parameters"}, "volume: -12.5\r\n")
    core.rtsp_received(1, volume, NOW)
    answer = core.rtsp_received(
        1, rtsp("GET_PARAMETER", 12, {"Content-Type": "text/parameters"}, "volume\r\n"), NOW
    )
    assert answer.data.endswith(b"\r\n\r\nvolume: -12.500000\r\n")


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\xff\x10garbage\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nbad header\r\n\r\n",
    ],
)
def test_garbage_gets_400_and_close(garbage: bytes) -> None:
    core = RaopReceiverCore()
    core.connection_made(1, SENDER)
    output = core.rtsp_received(1, garbage, NOW)
    assert status_of(output.data) == 400
    assert output.close


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["rtsp", "audio", "control", "timing"]))
def test_random_bytes_never_crash(data: bytes, where: str) -> None:
    core = RaopReceiverCore()
    session(core)
    if where == "rtsp":
        core.connection_made(2, SENDER)
        output = core.rtsp_received(2, data, NOW)
        assert output.data == b"" or output.data.startswith(b"RTSP/1.0 ")
    elif where == "audio":
        core.audio_received(data, NOW)
    elif where == "control":
        core.control_received(data, NOW)
    else:
        core.timing_received(data, NOW)
    assert core.state == "recording"


# ------------------------------------------------------------------ the asyncio server


async def test_emulator_over_loopback_sockets() -> None:
    loop = asyncio.get_running_loop()
    control = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    timing = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for sock in (control, timing):
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
        ports = f"control_port={control.getsockname()[1]};timing_port={timing.getsockname()[1]}"
        async with RaopEmulator(timing_burst_interval=0.05) as emulator:
            reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
            try:
                for request in (
                    announce(),
                    rtsp("SETUP", 2, {"Transport": f"RTP/AVP/UDP;unicast;mode=record;{ports}"}),
                    rtsp("RECORD", 3, {"RTP-Info": "seq=1000;rtptime=100000"}),
                ):
                    writer.write(request)
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                    assert status_of(head) == 200
                ask = await asyncio.wait_for(loop.sock_recvfrom(timing, 64), 5)
                assert ask[0][:4] == b"\x80\xd2\x00\x07"
                assert ask[1][1] == emulator.timing_port
                reply = b"\x80\xd3\x00\x07" + bytes(4) + ask[0][24:] + ask[0][24:] + ask[0][24:]
                await loop.sock_sendto(timing, reply, ("127.0.0.1", emulator.timing_port))
                sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    sender.sendto(SYNC_FIRST, ("127.0.0.1", emulator.control_port))
                    for index in (0, 1, 3):
                        sender.sendto(
                            alac_packet(index, marker=index == 0),
                            ("127.0.0.1", emulator.audio_port),
                        )
                finally:
                    sender.close()
                resend, _ = await asyncio.wait_for(loop.sock_recvfrom(control, 64), 5)
                assert resend[:2] == b"\x80\xd5"
                assert resend[4:] == bytes.fromhex("03ea0001")
                await loop.sock_sendto(
                    control,
                    b"\x80\xd6\x00\x01" + alac_packet(2),
                    ("127.0.0.1", emulator.control_port),
                )
                await emulator.wait_for(
                    lambda core: core.stream.loss_stats().healed == 1, seconds=5
                )
                await emulator.wait_for(lambda core: len(core.stream.timing) >= 1, seconds=5)
                writer.write(rtsp("TEARDOWN", 4))
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                assert status_of(head) == 200
                assert await asyncio.wait_for(reader.read(), 5) == b""
            finally:
                writer.close()
                await writer.wait_closed()
            assert emulator.stream.reconstructed_pcm() == b"".join(
                pcm_le(ramp(i)) for i in range(4)
            )
            assert emulator.core.teardown_at is not None
            port = emulator.port
        with pytest.raises(OSError):
            await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    finally:
        control.close()
        timing.close()


async def test_emulator_survives_garbage_and_closes_open_clients() -> None:
    async with RaopEmulator(expect_errors=["RTSP garbage: bad RTSP request line"]) as emulator:
        reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
        writer.write(b"\x16\x03\x01 not rtsp\r\n\r\n")
        assert status_of(await asyncio.wait_for(reader.read(), 5)) == 400
        writer.close()
        await writer.wait_closed()
        reader, idle_writer = await asyncio.open_connection("127.0.0.1", emulator.port)
        idle_writer.write(rtsp("OPTIONS", 1))
        assert status_of(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)) == 200
    # the emulator closed the still-open client connection on exit
    assert await asyncio.wait_for(reader.read(), 5) == b""
    idle_writer.close()
    await idle_writer.wait_closed()
