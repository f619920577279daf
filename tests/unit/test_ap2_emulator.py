"""The AirPlay 2 emulator's session, stream and PTP slave, driven without sockets."""

from __future__ import annotations

import plistlib
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from airplay_provider.protocol import ptp
from airplay_provider.protocol.alac import encode_uncompressed
from airplay_provider.protocol.hap.channel import ChannelCipher, control_keys
from tests.receivers.ap2_emulator_core import (
    AccessoryConnection,
    AccessoryDevice,
    EmuFraming,
    EmuRequest,
)
from tests.receivers.ap2_ptp_slave import PtpSlave
from tests.receivers.ap2_stream import Ap2StreamSession

PLIST = "application/x-apple-binary-plist"
KEY = bytes(range(32))
SENDER = ("127.0.0.1", 6001)


def _session(**options: Any) -> Ap2StreamSession:
    return Ap2StreamSession(
        event_port=5000, data_port=5001, control_port=5002, addresses=["127.0.0.1"], **options
    )


def _request(session: Ap2StreamSession, method: str, body: Any = None, **headers: str) -> int:
    data = b"" if body is None else plistlib.dumps(body, fmt=plistlib.FMT_BINARY)
    if body is not None:
        headers.setdefault("content-type", PLIST)
    request = EmuRequest(method, "rtsp://127.0.0.1/1", "RTSP/1.0", headers, data)
    response = session.handle(AccessoryConnection(AccessoryDevice()), request)
    assert response is not None
    return response.status


NTP_SESSION = {"sessionUUID": "U", "timingProtocol": "NTP", "timingPort": 6003}
PTP_SESSION = {"sessionUUID": "U", "timingProtocol": "PTP", "timingPeerInfo": {"ClockID": -2}}
STREAM = {
    "streams": [
        {"type": 96, "ct": 2, "audioFormat": 0x40000, "spf": 352, "sr": 44100, "shk": KEY,
         "controlPort": 6001}
    ]
}  # fmt: skip


def test_ptp_only_receiver_refuses_ntp_and_accepts_ptp() -> None:
    session = _session(timing_modes=frozenset({"PTP"}))
    assert _request(session, "SETUP", NTP_SESSION) == 400
    assert session.errors == ["SETUP refused: can not handle NTP streams"]
    assert _request(session, "SETUP", PTP_SESSION) == 200
    assert session.timing_clock_ids == {(1 << 64) - 2}


@pytest.mark.parametrize(
    "body",
    [{"timingProtocol": "NTP"}, {"sessionUUID": "U", "timingProtocol": "GPS"}, ["x"],
     {"sessionUUID": "U", "timingProtocol": "NTP", "timingPort": "6003"}],
)  # fmt: skip
def test_bad_session_setups_are_refused(body: object) -> None:
    assert _request(_session(), "SETUP", body) == 400


def test_stream_setup_needs_session_and_record_first() -> None:
    session = _session(record_before_stream=True)
    assert _request(session, "SETUP", STREAM) == 455
    assert _request(session, "SETUP", NTP_SESSION) == 200
    assert _request(session, "SETUP", STREAM) == 400
    assert session.errors[-1] == "stream SETUP before RECORD"
    assert _request(session, "RECORD") == 200
    assert _request(session, "SETUP", STREAM) == 200
    assert _request(session, "SETPEERS", ["10.0.0.1"]) == 400  # not a PTP session


def test_only_realtime_alac_streams() -> None:
    session = _session()
    _request(session, "SETUP", NTP_SESSION)
    bad = {"streams": [{**STREAM["streams"][0], "ct": 1}]}
    assert _request(session, "SETUP", bad) == 400


def _rtsp(method: str, uri: str, cseq: int, body: bytes = b"") -> bytes:
    head = f"{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n"
    if body:
        head += f"Content-Type: {PLIST}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def test_the_core_answers_from_its_method_tables_without_sockets() -> None:
    """Bytes in, bytes out: the accessory's table (pairing, /info, OPTIONS) on any connection,
    the session's table (SETUP, RECORD...) only once encrypted; every 404 recorded once."""
    device = AccessoryDevice(name="Table")
    session = _session(errors=device.errors)
    device.session_handler = session.handle
    connection = AccessoryConnection(device)
    reply = connection.feed(_rtsp("OPTIONS", "*", 1))
    assert reply.startswith(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n")
    assert b"Public: ANNOUNCE, SETUP, RECORD, GET, POST, OPTIONS\r\n" in reply
    reply = connection.feed(_rtsp("GET", "/info", 2))
    assert plistlib.loads(reply.partition(b"\r\n\r\n")[2])["name"] == "Table"
    assert connection.feed(_rtsp("RECORD", "rtsp://127.0.0.1/1", 3)).startswith(b"RTSP/1.0 404")
    assert session.methods == []  # the session's table is not reachable unencrypted

    shared = bytes(range(32, 64))  # as after pair-verify (tests/unit/hap covers the pairing)
    connection.framing = EmuFraming(shared)
    sender = ChannelCipher(control_keys(shared))

    def exchange(request: bytes) -> bytes:
        return sender.decrypt(connection.feed(sender.encrypt(request)))

    setup = plistlib.dumps(NTP_SESSION, fmt=plistlib.FMT_BINARY)
    assert exchange(_rtsp("SETUP", "rtsp://127.0.0.1/1", 4, setup)).startswith(b"RTSP/1.0 200")
    assert exchange(_rtsp("RECORD", "rtsp://127.0.0.1/1", 5)).startswith(b"RTSP/1.0 200")
    assert exchange(_rtsp("PLAY", "rtsp://127.0.0.1/1", 6)).startswith(b"RTSP/1.0 404")
    assert session.methods == ["SETUP", "RECORD", "PLAY"]
    assert session.timing == "NTP"
    assert session.recorded
    assert device.errors == [
        "RECORD rtsp://127.0.0.1/1: refused with 404 Not Found",
        "PLAY rtsp://127.0.0.1/1: refused with 404 Not Found",
    ]


def _audio(seq: int, rtp: int, pcm: bytes, *, marker: bool, counter: int) -> bytes:
    header = struct.pack(">BBHII", 0x80, 0xE0 if marker else 0x60, seq, rtp, 0)
    tail = counter.to_bytes(8, "little")
    sealed = ChaCha20Poly1305(KEY).encrypt(bytes(4) + tail, encode_uncompressed(pcm), header[4:])
    return header + sealed + tail


def _ntp_sync(first: bool, rtp_now: int, ntp: int) -> bytes:
    return struct.pack(
        ">BBHIQI", 0x90 if first else 0x80, 0xD4, 7, (rtp_now - 11025) & 0xFFFFFFFF, ntp, rtp_now
    )


def _streaming_session(**options: object) -> Ap2StreamSession:
    session = _session(**options)
    _request(session, "SETUP", NTP_SESSION)
    _request(session, "RECORD")
    _request(session, "SETUP", STREAM)
    return session


def test_audio_is_decrypted_decoded_and_scheduled() -> None:
    session = _streaming_session()
    pcm = [bytes([n]) * 1408 for n in (1, 2, 3)]
    ntp = (3_900_000_000 << 32) | (1 << 31)  # 0.5 s past a whole second
    session.control_received(_ntp_sync(True, 1000, ntp), SENDER, 0.0)
    for index, chunk in enumerate(pcm):
        session.audio_received(_audio(index, 1000 + 352 * index, chunk, marker=index == 0,
                                      counter=index), 0.0)  # fmt: skip
    assert session.errors == []
    segment = session.segments[0]
    assert segment.pcm() == b"".join(pcm)
    # the sync names frame rtp_now - 11025 - 11025 at `ntp` (shairport-sync's reading)
    expected = (3_900_000_000 - 2208988800) * 10**9 + 500_000_000 + 22050 * 10**9 // 44100
    assert segment.scheduled_ns(1000) == expected


def test_strictness_marker_first_sync_and_sync_kind() -> None:
    session = _streaming_session()
    session.audio_received(_audio(0, 0, bytes(1408), marker=False, counter=0), 0.0)
    assert "first audio packet of a segment lacks the marker bit" in session.errors
    assert "audio before the first (0x90) sync packet" in session.errors
    session.control_received(b"\x90\xd7\x00\x06" + bytes(24), SENDER, 0.0)
    assert session.errors[-1] == "PTP sync packet on a NTP session"
    tampered = bytearray(_audio(1, 352, bytes(1408), marker=False, counter=1))
    tampered[20] ^= 1
    session.audio_received(bytes(tampered), 0.0)
    assert "does not decrypt/decode" in session.errors[-1]


def test_lost_packets_are_requested_and_healed_by_resends() -> None:
    session = _streaming_session(drop_rate=0.5, drop_seed=2)
    session.control_received(_ntp_sync(True, 0, 1 << 63), SENDER, 0.0)
    packets = [_audio(n, 352 * n, bytes([n]) * 1408, marker=n == 0, counter=n) for n in range(20)]
    for packet in packets:
        session.audio_received(packet, 0.0)
    assert session.dropped > 0
    requests = session.poll(1.0)
    assert len(requests) == session.dropped
    for kind, request, address in requests:
        assert (kind, address, request[:4]) == ("control", SENDER, b"\x80\xd5\x00\x01")
        (seq,) = struct.unpack_from(">H", request, 4)
        session.control_received(b"\x80\xd6\x00\x01" + packets[seq], SENDER, 1.0)
    assert session.errors == []
    assert session.segments[0].pcm() == b"".join(bytes([n]) * 1408 for n in range(20))
    assert session.poll(2.0) == []


def test_ptp_slave_follows_only_the_named_clock_and_computes_the_offset() -> None:
    master = ptp.PortIdentity(0x1234)
    slave = PtpSlave()
    announce = ptp.encode_announce(master, 0)
    slave.general_received(announce, "10.0.0.1", 0)
    assert slave.master is None  # not in the timing-peer list yet
    slave.follow({0x1234})
    slave.general_received(announce, "10.0.0.1", 0)
    assert slave.master == 0x1234
    offset, delay = 5_000_000, 40_000  # master is 5 ms ahead of us, 40 µs path delay
    for seq in range(4):
        t1 = 1_000_000_000 + seq * 125_000_000
        slave.event_received(ptp.encode_sync(master, seq), "10.0.0.1", t1 - offset + delay)
        slave.general_received(ptp.encode_follow_up(master, seq, t1), "10.0.0.1", 0)
        t3 = t1 - offset + 2 * delay
        request = slave.poll(float(seq), t3)
        assert request is not None
        decoded = ptp.decode(request)
        assert decoded.message_type is ptp.MessageType.DELAY_REQ
        response = ptp.encode_delay_resp(master, decoded, t3 + offset + delay)
        slave.general_received(response, "10.0.0.1", t3 + 2 * delay)
    assert slave.offset_ns == offset
    assert slave.locked_at_local is not None
    ignored = slave.ignored
    plain_1588 = bytes([0x00]) + ptp.encode_sync(master, 9)[1:]
    slave.event_received(plain_1588, "10.0.0.1", 0)
    slave.event_received(ptp.encode_sync(ptp.PortIdentity(0x999), 9), "10.0.0.1", 0)
    assert slave.ignored == ignored + 2
