"""AirPlay 2 sans-I/O messages: 0xD7 sync (iOS capture), audio sealing, SETUP plists, replies."""

from __future__ import annotations

import plistlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from airplay_provider.protocol import ap2

SENDER = ap2.SenderIdentity(
    device_id="00:11:22:33:44:55", session_uuid="UUID-1", name="airplay-provider"
)


def test_ptp_sync_packet_matches_the_ios_capture() -> None:
    capture = "90d70006cbbbfe400001fd1685aea593cbbd2bb7f84288888f4f0008"
    packet = ap2.ptp_sync_packet(
        first=True, rtp_frame=0xCBBBFE40, ptp_ns=0x0001FD1685AEA593, clock_id=0xF84288888F4F0008
    )
    assert packet.hex() == capture
    later = ap2.ptp_sync_packet(first=False, rtp_frame=0xFFFFFFFF, ptp_ns=1, clock_id=2)
    assert later.hex() == "80d70006ffffffff0000000000000001" + "00012d76" + "0000000000000002"


def test_audio_sealing_layout_and_vector() -> None:
    key = bytes(range(32))
    header = bytes.fromhex("80e0000100000160deadbeef")
    sealer = ap2.AudioSealer(key)
    packet = sealer.seal(header, b"hello audio")
    assert packet.hex() == (
        "80e0000100000160deadbeef"  # header in clear
        "70dd2e5dc2c6c7a4770833"  # ciphertext, as long as the payload
        "995efca2808365aa775dad73c9843ba7"  # Poly1305 tag
        "0000000000000000"  # nonce tail: packet counter 0, little-endian
    )
    # an independent open: nonce = 4 zero bytes + tail, AAD = header bytes 4..11
    opened = ChaCha20Poly1305(key).decrypt(bytes(4) + packet[-8:], packet[12:-8], packet[4:12])
    assert opened == b"hello audio"
    second = sealer.seal(header, b"hello audio")
    assert second[-8:] == (1).to_bytes(8, "little")
    assert second[12:-8] != packet[12:-8]  # a new nonce, never a repeated keystream


def test_sealer_refuses_bad_sizes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        ap2.AudioSealer(bytes(16))
    with pytest.raises(ValueError, match="12 bytes"):
        ap2.AudioSealer(bytes(32)).seal(bytes(11), b"x")


def test_setup_session_ntp_names_our_timing_port() -> None:
    body = plistlib.loads(ap2.setup_session_ntp(SENDER, timing_port=6002))
    assert body["timingProtocol"] == "NTP"
    assert body["timingPort"] == 6002
    assert (body["deviceID"], body["sessionUUID"]) == ("00:11:22:33:44:55", "UUID-1")


def test_setup_session_ptp_names_our_clock_as_signed_int64() -> None:
    body = plistlib.loads(
        ap2.setup_session_ptp(
            SENDER, group_uuid="G", clock_id=0xF84288888F4F0008, addresses=["10.0.0.1"]
        )
    )
    assert body["timingProtocol"] == "PTP"
    peer = body["timingPeerInfo"]
    assert peer["ClockID"] == 0xF84288888F4F0008 - (1 << 64)
    assert peer["Addresses"] == ["10.0.0.1"]
    assert body["timingPeerList"] == [peer]


def test_setup_stream_is_realtime_alac_with_the_key() -> None:
    shk = bytes(range(32))
    body = plistlib.loads(ap2.setup_stream(shk=shk, control_port=6001, connection_id=-1))
    (stream,) = body["streams"]
    assert (stream["type"], stream["ct"], stream["audioFormat"]) == (96, 2, 0x40000)
    assert (stream["spf"], stream["sr"], stream["shk"]) == (352, 44100, shk)
    assert (stream["latencyMin"], stream["latencyMax"]) == (11025, 88200)
    assert stream["streamConnectionID"] == 0xFFFFFFFF
    with pytest.raises(ValueError, match="32 bytes"):
        ap2.setup_stream(shk=b"short", control_port=1, connection_id=1)


def test_teardown_and_setpeers_bodies() -> None:
    assert plistlib.loads(ap2.teardown_stream()) == {"streams": [{"type": 96}]}
    assert plistlib.loads(ap2.teardown_session()) == {}
    assert plistlib.loads(ap2.setpeers(["10.0.0.2", "10.0.0.1"])) == ["10.0.0.2", "10.0.0.1"]


def _bplist(value: Any) -> bytes:
    return plistlib.dumps(value, fmt=plistlib.FMT_BINARY)


def test_replies_are_read_by_key() -> None:
    session = ap2.parse_setup_session_reply(
        _bplist({"timingPeerInfo": {"Addresses": ["10.0.0.2", 7], "ID": "x"}, "eventPort": 5001})
    )
    assert session == ap2.SessionReply(5001, None, ("10.0.0.2",))
    stream = ap2.parse_setup_stream_reply(
        _bplist({"streams": [{"controlPort": 6001, "type": 96, "dataPort": 6000}]})
    )
    assert (stream.data_port, stream.control_port, stream.latency_min) == (6000, 6001, None)


@pytest.mark.parametrize(
    ("parser", "body"),
    [
        (ap2.parse_setup_session_reply, b"garbage"),
        (ap2.parse_setup_session_reply, _bplist(["not", "a", "dict"])),
        (ap2.parse_setup_session_reply, _bplist({"eventPort": 0})),
        (ap2.parse_setup_session_reply, _bplist({"eventPort": True})),
        (ap2.parse_setup_stream_reply, _bplist({"streams": []})),
        (ap2.parse_setup_stream_reply, _bplist({"streams": [{"dataPort": 6000}]})),
        (
            ap2.parse_setup_stream_reply,
            _bplist({"streams": [{"dataPort": 70000, "controlPort": 1}]}),
        ),
    ],
)
def test_bad_replies_are_typed_errors(parser: object, body: bytes) -> None:
    with pytest.raises(ap2.Ap2Error):
        parser(body)  # type: ignore[operator]
