"""Listen along for a hi-res session, sans-I/O: RTP/L24/48000/2 (RFC 3190) with a dynamic
payload type named by the SDP, big-endian 24-bit samples, timestamps in 48 kHz frames."""

from __future__ import annotations

import struct

import pytest

from airplay_provider.protocol.pcm_format import CD, HIRES
from airplay_provider.protocol.rtp_l16 import (
    L16Packetizer,
    RtpL16Error,
    pcm_to_be,
    rtpmap,
    s24le_to_be,
)
from airplay_provider.protocol.rtsp import MessageParser, Response
from airplay_provider.protocol.rtsp_listen import ListenConnection, describe_sdp


def s24(*values: int) -> bytes:
    return b"".join(v.to_bytes(3, "little", signed=True) for v in values)


def test_24_bit_samples_go_big_endian() -> None:
    pcm = s24(1, -2, 0x123456, -(2**23))
    big = s24le_to_be(pcm)
    assert big == b"".join(v.to_bytes(3, "big", signed=True) for v in (1, -2, 0x123456, -(2**23)))
    assert s24le_to_be(big) == pcm
    assert pcm_to_be(pcm, HIRES) == big
    assert pcm_to_be(b"\x01\x00\x02\x00", CD) == b"\x00\x01\x00\x02"  # (16-bit)
    with pytest.raises(RtpL16Error, match="24-bit"):
        s24le_to_be(b"\x00" * 4)


def test_the_l24_packetizer_counts_48k_frames_under_payload_type_96() -> None:
    frames = 1500  # one full packet (1024 frames) and one of 476
    pcm = s24(*range(2 * frames))
    packetizer = L16Packetizer(
        ssrc=7, first_seq=65535, first_timestamp=2**32 - 100, pcm_format=HIRES
    )
    data = packetizer.packetize(pcm)
    packets = []
    while data:
        assert data[0:2] == b"$\x00"
        length = int.from_bytes(data[2:4], "big")
        packets.append(data[4 : 4 + length])
        data = data[4 + length :]
    assert [len(p) - 12 for p in packets] == [1024 * 6, 476 * 6]
    heads = [struct.unpack(">BBHII", p[:12]) for p in packets]
    assert heads == [(0x80, 0x80 | 96, 65535, 2**32 - 100, 7), (0x80, 96, 0, 924, 7)]
    assert b"".join(p[12:] for p in packets) == s24le_to_be(pcm)
    with pytest.raises(RtpL16Error, match="whole stereo frames"):
        packetizer.packetize(pcm[:-6] + b"\x00" * 3)  # whole samples, half a frame


def test_describe_names_l24_48k_for_a_hires_stream() -> None:
    assert rtpmap(CD) == "10 L16/44100/2"
    sdp = describe_sdp("/den", "127.0.0.1", HIRES).decode()
    assert "m=audio 0 RTP/AVP 96\r\n" in sdp
    assert "a=rtpmap:96 L24/48000/2\r\n" in sdp
    formats = {"/den": HIRES, "/attic": CD}
    conn = ListenConnection(lambda p: p in formats, host="127.0.0.1", formats=formats.__getitem__)
    for path, wanted in (("/den", "96 L24/48000/2"), ("/attic", "10 L16/44100/2")):
        out, _ = conn.feed(
            f"DESCRIBE rtsp://127.0.0.1:554{path} RTSP/1.0\r\nCSeq: 2\r\n\r\n".encode()
        )
        (response,) = [m for m in MessageParser().feed(out) if isinstance(m, Response)]
        assert response.status == 200
        assert f"a=rtpmap:{wanted}\r\n" in response.body.decode()
