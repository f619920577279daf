"""Hand-built bytes for the RAOP emulator's own tests (no sender code): RTSP requests, SDP, sync
and audio packets with ALAC escape frames made from bit strings, and a core brought to RECORD."""

from __future__ import annotations

import re
import struct

from tests.receivers.raop_emulator_core import RaopReceiverCore

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


def datagram(core: RaopReceiverCore, kind: str, data: bytes) -> None:
    """`data` arrives at NOW on the core's audio or control port, by `kind` (else timing)."""
    if kind == "audio":
        core.audio_received(data, NOW)
    elif kind == "control":
        core.control_received(data, NOW)
    else:
        core.timing_received(data, NOW)
