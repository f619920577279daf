"""Tests of the RAOP receiver emulator itself, driven by hand-built bytes (no sender code): its
RTSP strictness (methods, transports, password, busy, parameters, garbage) and the asyncio
server over loopback sockets."""

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
from tests.receivers.raop_handmade import (
    NOW,
    SDP_ALAC,
    SDP_L16,
    SENDER,
    SYNC_FIRST,
    TRANSPORT,
    alac_packet,
    announce,
    datagram,
    header_of,
    pcm_le,
    ramp,
    rtsp,
    session,
    status_of,
)

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
    else:
        datagram(core, where, data)
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
