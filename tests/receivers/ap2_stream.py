"""Sans-I/O AirPlay 2 session of the receiver emulator: RTSP after pairing, then the UDP stream.

Strict like devices: SETUP session (NTP or PTP; a PTP-only receiver refuses NTP with 400),
optionally no stream SETUP before RECORD, type-96 ALAC 44100/16/2 streams only (type 103 also
ALAC 48000/24/2, as shairport-sync 5), SETPEERS only on PTP sessions. The stream side decrypts
ChaCha20-Poly1305 audio, decodes ALAC escape frames, records every sync anchor (0xD4 on NTP,
0xD7 on PTP; the wrong kind is an error), simulates loss and asks for resends, and keeps one
segment per RECORD/FLUSH. Nothing is imported from ``airplay_provider``: its own plist checks,
packet parsers and timing maths.
"""

from __future__ import annotations

import plistlib
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tests.receivers.ap2_emulator_core import AccessoryConnection, EmuRequest, EmuResponse
from tests.receivers.ap2_segment import (
    Anchor,
    Segment,
    ntp_to_unix_ns,
    signed32,
    unix_ns_to_ntp,
)
from tests.receivers.raop_emulator_wire import WireError, decode_alac_frame
from tests.receivers.strict import ErrorLog

if TYPE_CHECKING:
    from tests.receivers.ap2_buffered import BufferedStream

SocketKind = Literal["control", "timing"]
Datagram = tuple[SocketKind, bytes, tuple[str, int]]
# (audioFormat, sr) of the type-103 SETUPs this receiver plays → (SSRC of its packets, bits, rate)
BUFFERED_FORMATS: dict[tuple[object, object], tuple[int, int, int]] = {
    (0x40000, 44100): (0x0000FACE, 16, 44100),  # ALAC/44100/16/2
    (0x200000, 48000): (0x15000000, 24, 48000),  # ALAC/48000/24/2
}
PLIST = "application/x-apple-binary-plist"


@dataclass
class _Missing:
    attempts: int = 0
    next_at: float = 0.0


class Ap2StreamSession:
    """One emulated receiver's session; plug `handle` in as the accessory's session handler."""

    def __init__(
        self,
        *,
        event_port: int,
        data_port: int,
        control_port: int,
        addresses: list[str],
        timing_modes: frozenset[str] = frozenset({"PTP", "NTP"}),
        record_before_stream: bool = False,
        drop_rate: float = 0.0,
        drop_seed: int = 1,
        resend_interval: float = 0.05,
        resend_attempts: int = 6,
        errors: ErrorLog | None = None,
        buffered_port: int = 0,
        audio_buffer_size: int | None = 8 * 2**20,
        ptp_locked: Callable[[], bool] | None = None,
        now_ns: Callable[[], int] = time.time_ns,
        own_clock_id: int | None = None,
    ) -> None:
        """`errors`: the accessory's log, so RTSP and stream errors are in one place.
        `own_clock_id`: a receiver keeping its own PTP clock (standalone HomePod) only takes
        anchors on that timeline; others are logged in `ptp_anchors` and not played by."""
        self.event_port, self.data_port, self.control_port = event_port, data_port, control_port
        self.addresses = addresses
        self.timing_modes = timing_modes
        self.record_before_stream = record_before_stream
        self.drop_rate = drop_rate
        self._rng = random.Random(drop_seed)
        self.resend_interval, self.resend_attempts = resend_interval, resend_attempts
        self.errors = ErrorLog() if errors is None else errors
        self.methods: list[str] = []
        self.timing: str | None = None
        self.sender_timing_port: int | None = None
        self.timing_clock_ids: set[int] = set()
        self.shared_secret = b""
        self.recorded = False
        self.peers: list[str] = []
        self.key: ChaCha20Poly1305 | None = None
        self.stream_setups = 0
        self.session_setups = 0
        self.volumes: list[float] = []
        self.feedbacks = 0
        self.metadata = 0
        self.teardowns: list[str] = []
        self.segments: list[Segment] = []
        self.sync_source: tuple[str, int] | None = None
        self.dropped = 0
        self.resent_received = 0
        self.unhealed: list[int] = []
        self._missing: dict[int, _Missing] = {}
        self._last_seq: int | None = None
        self.timing_samples: list[tuple[int, int]] = []  # (round trip ns, offset ns)
        self._timing_next = 0.0
        self.buffered_port = buffered_port
        self.audio_buffer_size = audio_buffer_size
        self._ptp_locked = ptp_locked
        self._now_ns = now_ns
        self.own_clock_id = own_clock_id
        #: every PTP anchor (0xD7, SETRATEANCHORTIME taken): (rtp frame, network time, timeline
        #: clock id, local arrival ns)
        self.ptp_anchors: list[tuple[int, int, int, int]] = []
        self.stream_types: list[int] = []
        self.buffered: BufferedStream | None = None
        #: The method table of the encrypted session (any URI); others: the core answers 404.
        self._handlers: dict[str, Callable[[EmuRequest], EmuResponse]] = {
            "SETUP": self._setup,
            "RECORD": self._record,
            "SETPEERS": self._setpeers,
            "FLUSH": self._flush,
            "TEARDOWN": self._teardown,
            "SET_PARAMETER": self._set_parameter,
            "GET_PARAMETER": lambda _request: EmuResponse(200),
            "SETRATEANCHORTIME": self._set_rate_anchor_time,
            "FLUSHBUFFERED": self._flush_buffered,
        }

    def clock_ready(self) -> bool:
        """Has this receiver measured the sender's clock (3 NTP samples, or PTP locked)?"""
        if self.timing == "NTP":
            return len(self.timing_samples) >= 3
        return self._ptp_locked() if self._ptp_locked is not None else True

    def _error(self, message: str) -> None:
        self.errors.record(message)

    # ---- RTSP ---------------------------------------------------------------------------------

    def handle(self, conn: AccessoryConnection, request: EmuRequest) -> EmuResponse | None:
        """Requests on the encrypted connection; None lets the core answer 404."""
        self.methods.append(request.method)
        if request.method == "POST" and request.path == "/feedback":
            self.feedbacks += 1
            return EmuResponse(200)
        handler = self._handlers.get(request.method)
        if handler is None:
            return None
        if request.method == "SETUP":
            self.shared_secret = conn.shared_secret
        return handler(request)

    def _plist(self, request: EmuRequest) -> Any:
        if request.headers.get("content-type") != PLIST:
            return None
        try:
            return plistlib.loads(request.body)
        except Exception:
            return None

    def _setup(self, request: EmuRequest) -> EmuResponse:
        body = self._plist(request)
        if not isinstance(body, dict):
            return EmuResponse(400, "Bad Request")
        if "streams" in body:
            return self._setup_stream(body)
        protocol = body.get("timingProtocol")
        if not isinstance(body.get("sessionUUID"), str) or protocol not in ("NTP", "PTP"):
            return EmuResponse(400, "Bad Request")
        if protocol not in self.timing_modes:
            self._error(f"SETUP refused: can not handle {protocol} streams")
            return EmuResponse(400, "Bad Request")
        if protocol == "NTP":
            port = body.get("timingPort")
            if not isinstance(port, int) or not 0 < port < 65536:
                return EmuResponse(400, "Bad Request")
            self.sender_timing_port = port
        else:
            peer = body.get("timingPeerInfo")
            if not isinstance(peer, dict) or not isinstance(peer.get("ClockID"), int):
                return EmuResponse(400, "Bad Request")
            self.timing_clock_ids.add(peer["ClockID"] & 0xFFFFFFFFFFFFFFFF)
        self.timing = protocol
        self.session_setups += 1
        reply = {
            "eventPort": self.event_port,
            "timingPort": 0,
            "timingPeerInfo": {"Addresses": self.addresses, "ID": "EMULATOR-PEER"},
        }
        return EmuResponse(
            200, body=plistlib.dumps(reply, fmt=plistlib.FMT_BINARY), content_type=PLIST
        )

    def _setup_stream(self, body: dict[str, Any]) -> EmuResponse:
        if self.timing is None:
            self._error("stream SETUP before session SETUP")
            return EmuResponse(455, "Method Not Valid In This State")
        if self.record_before_stream and not self.recorded:
            self._error("stream SETUP before RECORD")
            return EmuResponse(400, "Bad Request")
        streams = body["streams"]
        stream = streams[0] if isinstance(streams, list) and len(streams) == 1 else None
        kind = stream.get("type") if isinstance(stream, dict) else None
        if kind == 103 and self.buffered_port:
            return self._setup_buffered(stream)
        wanted = {"type": 96, "ct": 2, "audioFormat": 0x40000, "spf": 352, "sr": 44100}
        if not isinstance(stream, dict) or any(stream.get(k) != v for k, v in wanted.items()):
            self._error(f"unsupported stream {stream!r:.200}")
            return EmuResponse(400, "Bad Request")
        shk, port = stream.get("shk"), stream.get("controlPort")
        if not isinstance(shk, bytes) or len(shk) != 32 or not isinstance(port, int):
            return EmuResponse(400, "Bad Request")
        self.key = ChaCha20Poly1305(shk)
        self.stream_setups += 1
        self.stream_types.append(96)
        self.segments.append(Segment(len(self.segments)))
        reply = {
            "streams": [{"controlPort": self.control_port, "type": 96, "dataPort": self.data_port}]
        }
        return EmuResponse(
            200, body=plistlib.dumps(reply, fmt=plistlib.FMT_BINARY), content_type=PLIST
        )

    def _setup_buffered(self, stream: Any) -> EmuResponse:
        """Type 103: no latencyMin/Max (Sonos would add latencyMax as delay), TCP dataPort."""
        from tests.receivers.ap2_buffered import BufferedStream  # noqa: PLC0415 - import cycle

        # audioFormat and sr must name the same ALAC format; shairport-sync 5 plays no other
        encoding = BUFFERED_FORMATS.get((stream.get("audioFormat"), stream.get("sr")))
        wanted = {"type": 103, "ct": 2, "spf": 352}
        if encoding is None or any(stream.get(k) != v for k, v in wanted.items()):
            self._error(f"unsupported buffered stream {stream!r:.200}")
            return EmuResponse(400, "Bad Request")
        if "latencyMin" in stream or "latencyMax" in stream:
            self._error("type 103 SETUP carries latencyMin/latencyMax")
            return EmuResponse(400, "Bad Request")
        shk = stream.get("shk")
        if not isinstance(shk, bytes) or len(shk) != 32:
            return EmuResponse(400, "Bad Request")
        assert self.timing is not None
        self.buffered = BufferedStream(
            shk,
            self.segments,
            self.errors,
            timing=self.timing,
            clock_ids=self.timing_clock_ids if self.own_clock_id is None else {self.own_clock_id},
            clock_ready=self.clock_ready,
            encoding=encoding,
        )
        self.stream_setups += 1
        self.stream_types.append(103)
        self.segments.append(self.buffered.new_segment())
        reply: dict[str, Any] = {"type": 103, "dataPort": self.buffered_port}
        if self.audio_buffer_size is not None:
            reply["audioBufferSize"] = self.audio_buffer_size
        return EmuResponse(
            200,
            body=plistlib.dumps({"streams": [reply]}, fmt=plistlib.FMT_BINARY),
            content_type=PLIST,
        )

    def _set_rate_anchor_time(self, request: EmuRequest) -> EmuResponse:
        if self.buffered is None or not self.recorded:
            self._error("SETRATEANCHORTIME without a buffered stream")
            return EmuResponse(455, "Method Not Valid In This State")
        refusals = self.buffered.anchor_refusals
        body, now_ns = self._plist(request), self._now_ns()
        status = self.buffered.set_rate_anchor_time(body, now_ns)
        if status == 200 and self.timing == "PTP" and body.get("rate") == 1:
            anchor = self.segments[-1].anchors[-1]
            timeline = body["networkTimeTimelineID"] & ((1 << 64) - 1)
            self.ptp_anchors.append((anchor.rtp, anchor.remote_ns, timeline, now_ns))
        # "Not yet: the clock is not measured" is the protocol's own answer, which a sender must
        # retry (counted in `anchor_refusals`), not a fault of the sender.
        not_yet = self.buffered.anchor_refusals > refusals
        return EmuResponse(status, "OK" if status == 200 else "Bad Request", expected=not_yet)

    def _flush_buffered(self, request: EmuRequest) -> EmuResponse:
        if self.buffered is None:
            self._error("FLUSHBUFFERED without a buffered stream")
            return EmuResponse(455, "Method Not Valid In This State")
        status = self.buffered.flush_buffered(self._plist(request))
        return EmuResponse(status, "OK" if status == 200 else "Bad Request")

    def buffered_received(self, data: bytes, now_ns: int) -> None:
        """Bytes on the buffered (TCP) data connection."""
        if self.buffered is None:
            self._error("data on the buffered port before a type 103 SETUP")
            return
        self.buffered.data_received(data, now_ns)

    def _record(self, request: EmuRequest) -> EmuResponse:
        if self.timing is None:
            return EmuResponse(455, "Method Not Valid In This State")
        self.recorded = True
        return EmuResponse(200, headers={"Audio-Latency": "0"})

    def _setpeers(self, request: EmuRequest) -> EmuResponse:
        peers = self._plist(request) if request.headers.get("content-type") == PLIST else None
        if request.headers.get("content-type") == "/peer-list-changed":
            try:
                peers = plistlib.loads(request.body)
            except Exception:
                peers = None
        if self.timing != "PTP" or not isinstance(peers, list):
            self._error("SETPEERS without a PTP session or with a bad body")
            return EmuResponse(400, "Bad Request")
        self.peers = [str(peer) for peer in peers]
        return EmuResponse(200)

    def _flush(self, request: EmuRequest) -> EmuResponse:
        fields = dict(
            part.strip().split("=", 1)
            for part in request.headers.get("rtp-info", "").split(";")
            if "=" in part
        )
        if not self.segments or not fields.get("rtptime", "").isdigit():
            self._error("FLUSH without a stream or RTP-Info rtptime")
            return EmuResponse(400, "Bad Request")
        self.segments.append(Segment(len(self.segments), flush_rtp=int(fields["rtptime"])))
        self._missing.clear()
        self._last_seq = None
        return EmuResponse(200)

    def _teardown(self, request: EmuRequest) -> EmuResponse:
        body = self._plist(request)
        if not isinstance(body, dict):
            return EmuResponse(400, "Bad Request")
        self.teardowns.append("stream" if body.get("streams") else "session")
        if body.get("streams"):
            self.key = None
        return EmuResponse(200)

    def _set_parameter(self, request: EmuRequest) -> EmuResponse:
        if request.headers.get("content-type") == "text/parameters":
            for line in request.body.decode(errors="replace").splitlines():
                if line.startswith("volume:"):
                    self.volumes.append(float(line.split(":", 1)[1]))
        else:
            self.metadata += 1
        return EmuResponse(200)

    # ---- UDP ----------------------------------------------------------------------------------

    def audio_received(self, data: bytes, now: float) -> list[Datagram]:
        """One datagram on the data port."""
        if self.drop_rate and self._segment_started() and self._rng.random() < self.drop_rate:
            if len(data) >= 4:
                seq = struct.unpack_from(">H", data, 2)[0]
                self._missing[seq] = _Missing(next_at=now + 0.02)
                self.dropped += 1
            return []
        self._accept_audio(data, now, resent=False)
        return []

    def _segment_started(self) -> bool:
        return bool(self.segments) and self.segments[-1].first_rtp is not None

    def _accept_audio(self, data: bytes, now: float, *, resent: bool) -> None:
        if self.key is None or not self.recorded:
            self._error("audio before stream SETUP and RECORD")
            return
        if len(data) <= 36 or data[0] != 0x80 or data[1] & 0x7F != 0x60:
            self._error(f"bad audio packet header {data[:2].hex()} ({len(data)} bytes)")
            return
        seq, rtp = struct.unpack_from(">HI", data, 2)
        try:
            frame = self.key.decrypt(bytes(4) + data[-8:], data[12:-8], data[4:12])
            pcm = decode_alac_frame(frame, 352)
        except (InvalidTag, WireError) as exc:
            self._error(f"audio packet {seq} does not decrypt/decode: {exc!r}")
            return
        segment = self.segments[-1]
        if segment.first_rtp is None:
            if resent or not data[1] & 0x80:
                self._error("first audio packet of a segment lacks the marker bit")
            if not segment.anchors or not segment.anchors[0].first:
                self._error("audio before the first (0x90) sync packet")
            segment.first_rtp = rtp
        offset = signed32(rtp - segment.first_rtp)
        if offset < 0:
            self._error(f"audio packet before the segment start ({offset} frames)")
            return
        segment.packets[offset] = pcm
        self._missing.pop(seq, None)
        if resent:
            self.resent_received += 1

    def control_received(self, data: bytes, addr: tuple[str, int], now: float) -> list[Datagram]:
        """Sync packets and resend replies on the control port."""
        if len(data) >= 8 and data[1] == 0xD6:
            self._accept_audio(data[4:], now, resent=True)
            return []
        if len(data) < 4 or data[1] not in (0xD4, 0xD7):
            self._error(f"unexpected control packet {data[:2].hex()}")
            return []
        kind = "NTP" if data[1] == 0xD4 else "PTP"
        if kind != self.timing:
            self._error(f"{kind} sync packet on a {self.timing} session")
            return []
        if not self.segments:
            self._error("sync packet before stream SETUP")
            return []
        self.sync_source = addr
        first = data[0] == 0x90
        if kind == "NTP" and len(data) == 20:
            t_lat, ntp, t_now = struct.unpack_from(">IQI", data, 4)
            latency = signed32(t_now - t_lat) + 11025  # bytes 2-3 are 7 (SPS rule)
            anchor = Anchor((t_now - latency) & 0xFFFFFFFF, ntp_to_unix_ns(ntp), first)
        elif kind == "PTP" and len(data) == 28:
            f1, ptp_ns, f2, clock_id = struct.unpack_from(">IQIQ", data, 4)
            if signed32(f2 - f1) != 77175:
                self._error("0xD7 F2 - F1 is not the iOS 77175")
            anchor = Anchor((f1 - 11035) & 0xFFFFFFFF, ptp_ns, first)
            self.ptp_anchors.append((anchor.rtp, ptp_ns, clock_id, self._now_ns()))
            if self.own_clock_id is not None and clock_id != self.own_clock_id:
                return []  # a time on a foreign timeline means nothing to it
        else:
            self._error(f"{kind} sync packet of {len(data)} bytes")
            return []
        segment = self.segments[-1]
        if not segment.anchors and not first and self.own_clock_id is None:
            self._error("first sync of a segment is not 0x90")
        segment.anchors.append(anchor)
        return []

    def poll(self, now: float) -> list[Datagram]:
        """Resend requests due now, and NTP timing requests (3 quick, then every 3 s)."""
        out: list[Datagram] = []
        if self.sync_source is not None:
            for seq, missing in list(self._missing.items()):
                if missing.next_at > now:
                    continue
                if missing.attempts >= self.resend_attempts:
                    self.unhealed.append(seq)
                    del self._missing[seq]
                    continue
                missing.attempts += 1
                missing.next_at = now + self.resend_interval
                request = b"\x80\xd5" + struct.pack(">HHH", 1, seq, 1)
                out.append(("control", request, self.sync_source))
        return out

    def timing_request(self, now: float, unix_ns: int) -> bytes | None:
        """A 0xD2 request to send now (NTP sessions), stamped with our clock."""
        if self.timing != "NTP" or self.sender_timing_port is None or now < self._timing_next:
            return None
        self._timing_next = now + (0.3 if len(self.timing_samples) < 3 else 3.0)
        return b"\x80\xd2\x00\x07" + bytes(20) + struct.pack(">Q", unix_ns_to_ntp(unix_ns))

    def timing_reply(self, data: bytes, unix_ns: int) -> None:
        """A 0xD3 reply: offset = ((t2 - t1) + (t3 - t4)) / 2 on the sender's clock."""
        if len(data) != 32 or data[1] != 0xD3:
            self._error("bad timing reply")
            return
        t1, t2, t3 = (ntp_to_unix_ns(v) for v in struct.unpack_from(">QQQ", data, 8))
        self.timing_samples.append(((unix_ns - t1) - (t3 - t2), ((t2 - t1) + (t3 - unix_ns)) // 2))
