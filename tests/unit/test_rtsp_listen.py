"""Listen along, sans-I/O: the RTSP server state machine and the RTP/L16 packetiser."""

from __future__ import annotations

import struct

import pytest

from airplay_provider.protocol.rtp_l16 import (
    MAX_PACKET_FRAMES,
    L16Packetizer,
    RtpL16Error,
    interleaved,
    s16be_to_le,
    s16le_to_be,
)
from airplay_provider.protocol.rtsp import MessageParser, Response
from airplay_provider.protocol.rtsp_listen import (
    ListenConnection,
    ListenProtocolError,
    Play,
    Teardown,
    describe_sdp,
    stream_path,
)

URL = "rtsp://127.0.0.1:8554/kitchen"


def bits(n: int) -> int:
    """Deterministic 'random' values: all ones of the asked width."""
    return (1 << n) - 1


def connection(paths: tuple[str, ...] = ("/kitchen",)) -> ListenConnection:
    return ListenConnection(lambda p: p in paths, host="127.0.0.1", random_bits=bits)


def responses(data: bytes) -> list[Response]:
    parsed = MessageParser().feed(data)
    assert all(isinstance(m, Response) for m in parsed)
    return [m for m in parsed if isinstance(m, Response)]


def request(method: str, uri: str, cseq: int, *extra: str) -> bytes:
    return (f"{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n" + "".join(extra) + "\r\n").encode()


def test_the_ffmpeg_sequence_from_options_to_teardown() -> None:
    conn = connection()
    out, events = conn.feed(request("OPTIONS", URL, 1))
    (options,) = responses(out)
    assert options.status == 200
    assert "DESCRIBE" in (options.headers.get("Public") or "")
    assert events == []

    out, _ = conn.feed(request("DESCRIBE", URL, 2, "Accept: application/sdp\r\n"))
    (describe,) = responses(out)
    assert describe.status == 200
    assert describe.headers.get("CSeq") == "2"
    assert describe.headers.get("Content-Base") == URL + "/"
    assert describe.headers.get("Content-Type") == "application/sdp"
    sdp = describe.body.decode()
    assert "m=audio 0 RTP/AVP 10\r\n" in sdp
    assert "a=rtpmap:10 L16/44100/2\r\n" in sdp
    assert "a=control:track1\r\n" in sdp

    transport = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
    out, _ = conn.feed(request("SETUP", URL + "/track1", 3, transport))
    (setup,) = responses(out)
    assert setup.status == 200
    assert setup.headers.get("Transport") == "RTP/AVP/TCP;unicast;interleaved=0-1"
    session = (setup.headers.get("Session") or "").split(";")[0]
    assert session == conn.session_id
    assert "timeout=60" in (setup.headers.get("Session") or "")

    out, events = conn.feed(request("PLAY", URL + "/", 4, f"Session: {session}\r\n"))
    (play,) = responses(out)
    assert play.status == 200
    assert play.headers.get("RTP-Info") == f"url={URL}/track1;seq=65535;rtptime=4294967295"
    assert events == [Play("/kitchen", 2**32 - 1, 65535, 2**32 - 1, 0)]
    assert conn.playing

    out, events = conn.feed(request("GET_PARAMETER", URL, 5, f"Session: {session}\r\n"))
    assert [r.status for r in responses(out)] == [200]
    assert events == []

    out, events = conn.feed(request("TEARDOWN", URL, 6, f"Session: {session}\r\n"))
    assert [r.status for r in responses(out)] == [200]
    assert events == [Teardown()]
    assert conn.closed


def test_requests_split_anywhere_and_pipelined_with_rtcp_frames_between() -> None:
    conn = connection()
    rtcp = interleaved(1, b"\x81\xc9" + bytes(30))  # a receiver report on channel 1
    stream = (
        request("OPTIONS", URL, 1)
        + rtcp
        + request("SET_PARAMETER", URL, 2, "Content-Length: 5\r\n")[:-2]
        + b"\r\n$a$bc"  # a body with '$' in it: part of the request, not a frame
        + rtcp
    )
    out = b""
    for i in range(len(stream)):
        out += conn.feed(stream[i : i + 1])[0]
    assert [(r.status, r.headers.get("CSeq")) for r in responses(out)] == [
        (200, "1"),
        (200, "2"),
    ]
    assert conn.skipped_frames == 2


def test_errors_unknown_path_udp_transport_wrong_session_other_stream() -> None:
    conn = connection(("/kitchen", "/garden"))
    out, _ = conn.feed(request("DESCRIBE", "rtsp://h:1/nowhere", 1))
    assert [r.status for r in responses(out)] == [404]
    udp = "Transport: RTP/AVP;unicast;client_port=5000-5001\r\n"
    out, _ = conn.feed(request("SETUP", URL + "/track1", 2, udp))
    (refused,) = responses(out)
    assert refused.status == 461
    assert conn.path is None
    out, _ = conn.feed(request("PLAY", URL, 3, "Session: 1234\r\n"))
    assert [r.status for r in responses(out)] == [454]  # nothing set up
    tcp = "Transport: RTP/AVP/UDP;unicast, RTP/AVP/TCP;unicast;interleaved=4-5\r\n"
    out, _ = conn.feed(request("SETUP", URL + "/track1", 4, tcp))
    (setup,) = responses(out)
    assert setup.headers.get("Transport") == "RTP/AVP/TCP;unicast;interleaved=4-5"
    out, _ = conn.feed(request("SETUP", "rtsp://h:1/garden/track1", 5, tcp))
    assert [r.status for r in responses(out)] == [459]  # one stream per connection
    out, events = conn.feed(request("PLAY", URL, 6, "Session: wrong\r\n"))
    assert [r.status for r in responses(out)] == [454]
    assert events == []
    out, _ = conn.feed(request("RECORD", URL, 7))
    assert [r.status for r in responses(out)] == [405]


def test_garbage_is_a_protocol_error() -> None:
    conn = connection()
    with pytest.raises(ListenProtocolError):
        conn.feed(b"\x16\x03\x01 hello\r\n\r\n")  # a TLS hello, say
    with pytest.raises(ListenProtocolError):
        connection().feed(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")  # a response


def test_stream_path_and_sdp() -> None:
    assert stream_path("rtsp://h:1/kitchen/track1") == "/kitchen"
    assert stream_path("rtsp://h:1/kitchen/") == "/kitchen"
    assert stream_path("rtsp://h:1") == "/"
    assert stream_path("/a/b") == "/a/b"
    assert "c=IN IP6 ::1\r\n" in describe_sdp("/x", "::1").decode()


def test_packetizer_splits_swaps_and_numbers_continuously() -> None:
    frames = MAX_PACKET_FRAMES + 10
    pcm = b"".join(struct.pack("<hh", i, -i) for i in range(frames))
    packer = L16Packetizer(ssrc=0x01020304, first_seq=65535, first_timestamp=2**32 - 100)
    wire = packer.packetize(pcm) + packer.packetize(pcm[:40])
    packets = []
    while wire:
        assert wire[:2] == b"$\x00"
        length = int.from_bytes(wire[2:4], "big")
        packets.append(wire[4 : 4 + length])
        wire = wire[4 + length :]
    assert len(packets) == 3
    headers = [struct.unpack(">BBHII", p[:12]) for p in packets]
    assert headers[0] == (0x80, 0x80 | 10, 65535, 2**32 - 100, 0x01020304)  # marker first
    assert headers[1] == (0x80, 10, 0, (2**32 - 100 + MAX_PACKET_FRAMES) % 2**32, 0x01020304)
    assert headers[2][2:4] == (1, (2**32 - 100 + frames) % 2**32)
    payload = b"".join(p[12:] for p in packets)
    assert payload[:4] == struct.pack(">hh", 0, 0)
    assert payload[4:8] == struct.pack(">hh", 1, -1)
    assert s16be_to_le(payload) == pcm + pcm[:40]


def test_packetizer_and_framing_refuse_bad_input() -> None:
    packer = L16Packetizer(ssrc=1, first_seq=0, first_timestamp=0)
    with pytest.raises(RtpL16Error):
        packer.packetize(b"\x00" * 6)  # not whole stereo frames
    with pytest.raises(RtpL16Error):
        s16le_to_be(b"\x00")
    with pytest.raises(RtpL16Error):
        interleaved(256, b"")
    with pytest.raises(RtpL16Error):
        interleaved(0, bytes(70000))
