"""AirPlay 2 buffered audio (stream type 103), sans-I/O: the choice, packets, anchor and flush.

Buffered audio goes over TCP to the stream's dataPort, each packet behind a 2-byte big-endian
length that counts itself. A packet is the realtime layout (docs/protocol.md B.14: 12-byte
header in clear, ALAC sealed with ChaCha20-Poly1305 under `shk`, AAD = header bytes 4..11, tag,
8-byte little-endian counter nonce), except the header: bytes 1..3 hold the marker bit (always
set) and a 23-bit sequence number, and the SSRC word names the packet's encoding (receivers pick
their decoder and sample rate from it: shairport-sync 5 plays nothing, silently, behind an SSRC
it does not know, e.g. 0). No sync packets and no resends:
`SETRATEANCHORTIME` says which RTP frame plays at which instant of our clock (rate 1) or pauses
(rate 0), and `FLUSHBUFFERED` drops what the receiver holds up to a point (B.18).
"""

from __future__ import annotations

import plistlib
import struct
from typing import Any, Literal

from airplay_provider.protocol.pcm_format import CD, HIRES, PcmFormat
from airplay_provider.protocol.txt import Feature, has_feature, is_apple, model_info

SEQ_MASK = 0x7FFFFF  # 23-bit sequence numbers
LENGTH_BYTES = 2
MAX_PACKET_BYTES = 0xFFFF - LENGTH_BYTES
StreamType = Literal["realtime", "buffered"]
StreamChoice = Literal["auto", "realtime", "buffered"]

_HEADER = struct.Struct(">BBHII")

# The SSRC of buffered ALAC packets, as shairport-sync 5 knows them: 0x0000FACE for 44100/16/2
# (its own id), 0x15000000 for 48000/24/2 as Apple senders send it (0x16000000/0x17000000 are AAC
# 44.1/48 kHz). It knows no ALAC 44100/24 or 48000/16, so those formats are not offered.
SSRC_ALAC_44100_16_2 = 0x0000FACE
SSRC_ALAC_48000_24_2 = 0x15000000
#: The formats a stream can carry, with the SSRC of their buffered packets.
STREAM_FORMATS: dict[PcmFormat, int] = {CD: SSRC_ALAC_44100_16_2, HIRES: SSRC_ALAC_48000_24_2}
# shairport-sync 4 (model "Shairport Sync", with a space) offers bit 40 but decodes every
# buffered packet as AAC: our ALAC would never play there.
_AAC_ONLY_BUFFERED_MODELS = frozenset({"Shairport Sync"})


def choose_stream_type(choice: StreamChoice, *, features: int, model: str) -> StreamType:
    """`auto`: buffered when the receiver has feature bit 40 and is neither an Apple model (Apple
    TV takes type 103 but never syncs its clock on it) nor shairport-sync 4 (AAC-only buffered
    decoder); else realtime. Explicit choices win."""
    if choice != "auto":
        return choice
    if model in _AAC_ONLY_BUFFERED_MODELS:
        return "realtime"
    manufacturer, _ = model_info(None, model or None)
    if has_feature(features, Feature.BUFFERED_AUDIO) and not is_apple(manufacturer):
        return "buffered"
    return "realtime"


def format_possible(pcm: PcmFormat, stream_type: StreamType) -> bool:
    """Realtime streams carry 44100/16 only; buffered ones any of `STREAM_FORMATS`."""
    return pcm == CD if stream_type == "realtime" else pcm in STREAM_FORMATS


def buffered_ssrc(pcm: PcmFormat) -> int:
    """The SSRC word of buffered packets in `pcm` (ValueError for a format no receiver knows)."""
    try:
        return STREAM_FORMATS[pcm]
    except KeyError:
        raise ValueError(f"no buffered ALAC encoding for {pcm}") from None


def unwrap_seq(last: int, seq16: int) -> int:
    """The 23-bit sequence number whose low 16 bits are `seq16`, at or just after `last`."""
    return (last + ((seq16 - last) & 0xFFFF)) & SEQ_MASK


def buffered_header(*, seq: int, timestamp: int, ssrc: int = SSRC_ALAC_44100_16_2) -> bytes:
    """12-byte header: 0x80, marker + 23-bit `seq`, RTP timestamp, SSRC (the encoding)."""
    seq &= SEQ_MASK
    return _HEADER.pack(
        0x80, 0x80 | (seq >> 16), seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF
    )


def frame_packet(packet: bytes) -> bytes:
    """The packet as it goes on the TCP stream: 2-byte BE length (counting itself) first."""
    size = len(packet) + LENGTH_BYTES
    if size > 0xFFFF:
        raise ValueError(f"buffered packet of {len(packet)} bytes does not fit a frame")
    return size.to_bytes(LENGTH_BYTES, "big") + packet


def network_time_of_ns(ns: int) -> tuple[int, int]:
    """(seconds, 2^-64 fraction) of a nanosecond instant (PTP timeline)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return seconds, (rest << 64) // 1_000_000_000


def network_time_of_ntp(ntp: int) -> tuple[int, int]:
    """(seconds, 2^-64 fraction) of a 64-bit NTP instant (NTP-timed sessions)."""
    return ntp >> 32, (ntp & 0xFFFFFFFF) << 32


def _plist(value: Any) -> bytes:
    return plistlib.dumps(value, fmt=plistlib.FMT_BINARY, sort_keys=True)


def _signed64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


def set_rate_anchor_time(
    *, rtp_time: int, network_time: tuple[int, int], clock_id: int, rate: int = 1
) -> bytes:
    """SETRATEANCHORTIME body: frame `rtp_time` plays at `network_time` on clock `clock_id`."""
    seconds, fraction = network_time
    return _plist(
        {
            "networkTimeSecs": seconds,
            "networkTimeFrac": _signed64(fraction),
            "networkTimeTimelineID": _signed64(clock_id),
            "rtpTime": rtp_time & 0xFFFFFFFF,
            "rate": rate,
        }
    )


def pause_rate() -> bytes:
    """SETRATEANCHORTIME body that pauses playback (rate 0)."""
    return _plist({"rate": 0})


def flush_buffered(*, until_seq: int, until_ts: int) -> bytes:
    """FLUSHBUFFERED body: drop everything before packet `until_seq` / frame `until_ts`."""
    return _plist({"flushUntilSeq": until_seq & SEQ_MASK, "flushUntilTS": until_ts & 0xFFFFFFFF})
