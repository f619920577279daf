"""The UDP side of one stream in the RAOP receiver emulator (tests only, sans-I/O).

Sync packets (anchor line, strict first-sync checks), audio packets (marker, RECORD rtptime,
ALAC escape or L16 decoding, reconstruction by RTP timestamp), simulated loss with resend
requests, and NTP-like timing requests. Plain (unencrypted) RAOP only; nothing is imported
from ``airplay_provider``.
"""

from __future__ import annotations

import random
import statistics
import struct
from dataclasses import dataclass, field

from tests.receivers.raop_emulator_wire import (
    AudioPacket,
    AudioPacketRecord,
    Datagram,
    EmulatorError,
    LossStats,
    SyncRecord,
    TimingRecord,
    WireError,
    alac_header,
    decode_alac_frame,
    encode_resend_request,
    encode_timing_request,
    ntp_to_unix,
    parse_audio_packet,
    parse_sync,
    play_time_ntp,
    signed16,
    signed32,
    swap16,
    sync_line_deviation,
    unix_to_ntp,
)

# A datagram the sender sent just before TEARDOWN may be read just after it (the RTSP socket
# and the audio socket are separate queues); later ones are a sender fault.
IN_FLIGHT_S = 0.05


@dataclass
class _Segment:
    """Audio between RECORD (or a FLUSH) and the next FLUSH."""

    index: int
    flush_rtptime: int | None = None
    first_sync: SyncRecord | None = None
    first_audio: AudioPacketRecord | None = None
    pcm: dict[int, bytes] = field(default_factory=dict)  # offset from first_audio.rtptime
    compressed: dict[int, bytes] = field(default_factory=dict)  # ALAC payloads, not decoded yet


@dataclass
class _Pending:
    attempts: int = 0
    next_at: float = 0.0


class RaopStreamReceiver:
    """One announced stream: feed it datagrams with the receiver clock, get datagrams back.

    ``drop_rate``/``drop_seed`` simulate loss of that fraction of original audio packets
    (never the first of a segment; a drop among the last packets goes unnoticed, as on a
    device); lost packets are asked for with resend requests (``resend_attempts`` tries,
    ``resend_interval`` s apart). ``errors`` may be a list shared with the RTSP side.

    Compressed ALAC frames are checked (header) on arrival but decoded by ``settle()``, which
    ``missing_frames``/``reconstructed_pcm`` and the emulator's ``errors`` call: decoding in
    Python costs about a millisecond a packet, and doing it on arrival made emulators that
    share a loaded test process read later packets late.
    """

    def __init__(
        self,
        *,
        codec: str = "ALAC",
        frame_length: int = 352,
        drop_rate: float = 0.0,
        drop_seed: int = 0,
        timing_burst_interval: float = 0.3,
        timing_interval: float = 3.0,
        first_timing_delay: float = 0.0,
        resend_attempts: int = 3,
        resend_interval: float = 0.1,
        errors: list[str] | None = None,
    ) -> None:
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError("drop_rate must be in [0, 1)")
        self.codec = codec
        self.frame_length = frame_length
        self.errors: list[str] = [] if errors is None else errors
        self._drop_rate = drop_rate
        self._rng = random.Random(drop_seed)
        self._timing_burst_interval = timing_burst_interval
        self._timing_interval = timing_interval
        self._first_timing_delay = first_timing_delay  # a receiver slow to ask
        self._resend_attempts = resend_attempts
        self._resend_interval = resend_interval
        self.active = False
        self.recording = False
        self.stopped_at: float | None = None
        self.after_teardown = 0  # datagrams already in flight when TEARDOWN was read
        self.sender_host: str | None = None
        self.sender_control_port: int | None = None
        self.sender_timing_port: int | None = None
        self.record_seq: int | None = None
        self.record_rtptime: int | None = None
        self.first_audio: tuple[int, int, bool] | None = None  # (seq, rtptime, marker)
        self.sync_packets: list[SyncRecord] = []
        self.audio_packets: list[AudioPacketRecord] = []
        self.timing: list[TimingRecord] = []
        self.segments: list[_Segment] = [_Segment(0)]
        self.discarded_after_flush = 0
        self._record_sync_checked = False
        self._highest: int | None = None
        self._received: set[int] = set()
        self._pending: dict[int, _Pending] = {}
        self._dropped: set[int] = set()
        self._requested: set[int] = set()
        self._healed: set[int] = set()
        self._resend_requests_sent = 0
        self._resend_counter = 0
        self._duplicates = 0
        self._unsolicited = 0
        self._timing_pending: dict[int, float] = {}
        self._timing_sent = 0
        self._next_timing_at: float | None = None

    def _error(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)

    # ------------------------------------------------------------------ session events

    def start(self, host: str, control_port: int, timing_port: int, now: float) -> None:
        """SETUP done: the sender's address is known; timing requests start."""
        self.sender_host, self.sender_control_port = host, control_port
        self.sender_timing_port, self.active = timing_port, True
        self._next_timing_at = now + self._first_timing_delay

    def record(self, seq: int | None, rtptime: int | None) -> None:
        """RECORD with its RTP-Info (None when absent)."""
        self.record_seq, self.record_rtptime, self.recording = seq, rtptime, True
        self._check_record_sync()

    def flush(self, rtptime: int | None) -> None:
        """FLUSH: a new segment starts; audio before ``rtptime`` is discarded."""
        self.segments.append(_Segment(len(self.segments), flush_rtptime=rtptime))
        self._highest = None
        self._received.clear()
        self._pending.clear()

    def stop(self, now: float | None = None) -> None:
        """TEARDOWN or connection lost: nothing more is sent or accepted."""
        self.active = self.recording = False
        self.stopped_at = now
        self._next_timing_at = None
        self._pending.clear()

    # ------------------------------------------------------------------ datagrams

    def audio_received(self, data: bytes, now: float) -> list[Datagram]:
        """An audio-port datagram (also accepts a 0x80 0xD6 resend reply, as shairport does)."""
        if data[:2] == b"\x80\xd6":
            return self._resend_reply(data, now)
        try:
            packet = parse_audio_packet(data)
        except WireError as exc:
            self._error(f"audio port: {exc}")
            return []
        return self._accept_audio(packet, now, resent=False)

    def control_received(self, data: bytes, now: float) -> list[Datagram]:
        """A control-port datagram: a sync packet or a resend reply."""
        if data[:2] == b"\x80\xd6":
            return self._resend_reply(data, now)
        try:
            sync, word = parse_sync(data, now, self.segments[-1].index)
        except WireError as exc:
            self._error(f"control port: {exc}")
            return []
        self._sync(sync, word)
        return []

    def timing_received(self, data: bytes, now: float) -> None:
        """A timing-port datagram: must be a reply (0x80 0xD3) to one of our requests."""
        if len(data) != 32 or data[:2] != b"\x80\xd3":
            self._error(f"timing port: not a timing reply: {data[:8].hex()} ({len(data)} bytes)")
            return
        origin, receive, transmit = struct.unpack_from(">QQQ", data, 8)
        sent_at = self._timing_pending.pop(origin, None)
        if sent_at is None:
            self._error("timing reply whose origin matches none of our requests")
            return
        if receive == 0 or transmit < receive:
            self._error("timing reply with empty or inverted receive/transmit times")
            return
        t2, t3 = ntp_to_unix(receive), ntp_to_unix(transmit)
        offset = ((t2 - sent_at) + (t3 - now)) / 2
        self.timing.append(TimingRecord(sent_at, now, offset, (now - sent_at) - (t3 - t2)))

    def poll(self, now: float) -> list[Datagram]:
        """Datagrams due at ``now``: timing requests and resend retries."""
        out = self._due_resends(now)
        due = self._next_timing_at
        if due is not None and now >= due and self.sender_host and self.sender_timing_port:
            transmit = unix_to_ntp(now)
            while transmit in self._timing_pending:
                transmit += 1
            self._timing_pending[transmit] = now
            addr = (self.sender_host, self.sender_timing_port)
            out.append(Datagram("timing", addr, encode_timing_request(transmit)))
            self._timing_sent += 1
            burst = self._timing_sent < 3
            self._next_timing_at = now + (
                self._timing_burst_interval if burst else self._timing_interval
            )
        return out

    def next_deadline(self) -> float | None:
        """When ``poll`` next has something to send (None: nothing scheduled)."""
        times = [p.next_at for p in self._pending.values() if p.attempts < self._resend_attempts]
        if self._next_timing_at is not None:
            times.append(self._next_timing_at)
        return min(times, default=None)

    def _sync(self, record: SyncRecord, word: int) -> None:
        if word != 7:
            self._error(f"sync packet bytes 2-3 are {word}, want 7")
        segment = self.segments[-1]
        if not self.active:
            self._error("sync packet outside a session")
        if segment.first_sync is None:
            segment.first_sync = record
            if not record.first:
                self._error(f"first sync of segment {segment.index} lacks the 0x90 flag")
        else:
            deviation = sync_line_deviation(segment.first_sync, record)
            if abs(deviation) > 1.0:
                self._error(
                    f"sync packet re-anchors the timeline by {deviation:.1f} frames "
                    f"(segment {segment.index})"
                )
        self.sync_packets.append(record)
        self._check_record_sync()

    def _check_record_sync(self) -> None:
        if self._record_sync_checked or self.record_rtptime is None or not self.sync_packets:
            return
        self._record_sync_checked = True
        if self.sync_packets[0].rtp_now != self.record_rtptime:
            self._error(
                f"first sync rtp_now {self.sync_packets[0].rtp_now} != "
                f"RECORD rtptime {self.record_rtptime}"
            )

    def _resend_reply(self, data: bytes, now: float) -> list[Datagram]:
        try:
            packet = parse_audio_packet(data[4:])
        except WireError as exc:
            self._error(f"resend reply: {exc}")
            return []
        return self._accept_audio(packet, now, resent=True)

    def _accept_audio(self, packet: AudioPacket, now: float, *, resent: bool) -> list[Datagram]:
        if not self.recording:
            stopped_at = self.stopped_at
            if stopped_at is not None and now - stopped_at <= IN_FLIGHT_S:
                self.after_teardown += 1  # sent before TEARDOWN, read after it: no fault
            else:
                self._error("audio packet outside RECORD")
            return []
        compressed = False
        try:
            if self.codec == "L16":
                if not packet.payload or len(packet.payload) % 4:
                    raise WireError(f"L16 payload of {len(packet.payload)} bytes")
                pcm = swap16(packet.payload)
                frames = len(pcm) // 4
            else:
                frames, compressed = alac_header(packet.payload, self.frame_length)
                pcm = b"" if compressed else decode_alac_frame(packet.payload, self.frame_length)
        except WireError as exc:
            self._error(f"audio payload: {exc}")
            return []
        segment = self.segments[-1]
        first = segment.first_audio
        if first is None:
            early = segment.flush_rtptime is not None and (
                signed32(packet.rtptime - segment.flush_rtptime) < 0
            )
            if early or resent:
                self.discarded_after_flush += int(early)
                self._unsolicited += int(resent)
                return []
            self._check_first_audio(segment, packet)
            self._highest = ext = packet.seq
        else:
            assert self._highest is not None
            ext = self._highest + signed16(packet.seq - self._highest)
            if ext in self._received:
                self._duplicates += 1
                return []
            if ext in self._pending:
                del self._pending[ext]
                self._healed.add(ext)
            elif ext > self._highest:
                if not resent and self._drop_rate and self._rng.random() < self._drop_rate:
                    self._dropped.add(ext)
                    return []
                for missing in range(self._highest + 1, ext):
                    self._pending[missing] = _Pending(0, now)
                    self._requested.add(missing)
                self._highest = ext
            elif resent:
                self._unsolicited += 1
        record = AudioPacketRecord(
            packet.seq, packet.rtptime, packet.marker, frames, now, resent, segment.index
        )
        if first is None:
            segment.first_audio = first = record
        offset = signed32(packet.rtptime - first.rtptime)
        if compressed:
            segment.compressed[offset] = packet.payload
        else:
            segment.pcm[offset] = pcm
        self._received.add(ext)
        self.audio_packets.append(record)
        return self._due_resends(now)

    def _check_first_audio(self, segment: _Segment, packet: AudioPacket) -> None:
        where = f"segment {segment.index}"
        if not packet.marker:
            self._error(f"first audio packet of {where} lacks the marker bit")
        if segment.first_sync is None:
            self._error(f"first audio packet of {where} arrived before any sync packet")
        elif segment.first_sync.rtp_now != packet.rtptime:
            self._error(
                f"first sync rtp_now {segment.first_sync.rtp_now} != first audio rtptime "
                f"{packet.rtptime} ({where})"
            )
        if self.first_audio is None:
            self.first_audio = (packet.seq, packet.rtptime, packet.marker)
            if self.record_rtptime is not None and packet.rtptime != self.record_rtptime:
                self._error(
                    f"first audio rtptime {packet.rtptime} != RECORD rtptime {self.record_rtptime}"
                )
            if self.record_seq is not None and packet.seq != self.record_seq:
                self._error(f"first audio seq {packet.seq} != RECORD seq {self.record_seq}")

    def _due_resends(self, now: float) -> list[Datagram]:
        due = sorted(
            ext
            for ext, pending in self._pending.items()
            if pending.next_at <= now and pending.attempts < self._resend_attempts
        )
        if not due or not self.sender_host or not self.sender_control_port:
            return []
        addr = (self.sender_host, self.sender_control_port)
        out: list[Datagram] = []
        runs: list[list[int]] = []
        for ext in due:
            if runs and runs[-1][-1] + 1 == ext:
                runs[-1].append(ext)
            else:
                runs.append([ext])
            self._pending[ext].attempts += 1
            self._pending[ext].next_at = now + self._resend_interval
        for run in runs:
            self._resend_counter += 1
            request = encode_resend_request(self._resend_counter, run[0], len(run))
            out.append(Datagram("control", addr, request))
        self._resend_requests_sent += len(out)
        return out

    # ------------------------------------------------------------------ queries

    def loss_stats(self) -> LossStats:
        """Counts of simulated drops and their recovery."""
        return LossStats(
            dropped=len(self._dropped),
            requested=len(self._requested),
            healed=len(self._healed),
            still_missing=len(self._pending),
            resend_requests_sent=self._resend_requests_sent,
            duplicates=self._duplicates,
            unsolicited_resends=self._unsolicited,
        )

    def settle(self) -> None:
        """Decode the compressed ALAC frames received so far (a bad one is an error)."""
        for segment in self.segments:
            for offset, payload in sorted(segment.compressed.items()):
                try:
                    segment.pcm[offset] = decode_alac_frame(payload, self.frame_length)
                except WireError as exc:
                    self._error(f"audio payload: {exc}")
            segment.compressed.clear()

    def missing_frames(self) -> list[tuple[int, int]]:
        """Gaps in the received audio as (first missing rtptime, frame count)."""
        self.settle()
        gaps: list[tuple[int, int]] = []
        for segment in self.segments:
            if segment.first_audio is None:
                continue
            cursor = 0
            for offset in sorted(segment.pcm):
                if offset > cursor:
                    start = (segment.first_audio.rtptime + cursor) & 0xFFFFFFFF
                    gaps.append((start, offset - cursor))
                cursor = max(cursor, offset + len(segment.pcm[offset]) // 4)
        return gaps

    def reconstructed_pcm(self) -> bytes:
        """The s16le stereo PCM from the first packet's rtptime, segment after segment.

        Raises EmulatorError when frames are missing or packets overlap.
        """
        gaps = self.missing_frames()
        if gaps:
            raise EmulatorError(f"audio has gaps (rtptime, frames): {gaps[:10]}")
        out = bytearray()
        for segment in self.segments:
            cursor = 0
            for offset in sorted(segment.pcm):
                if offset != cursor:
                    raise EmulatorError(f"overlapping audio at offset {offset} (segment)")
                out += segment.pcm[offset]
                cursor = offset + len(segment.pcm[offset]) // 4
        return bytes(out)

    def play_time_ntp(self, frame: int) -> int:
        """Sender NTP time at which RTP frame ``frame`` is audible (from the latest sync)."""
        if not self.sync_packets:
            raise EmulatorError("no sync packet received")
        return play_time_ntp(self.sync_packets[-1], frame)

    def sync_line_deviations(self) -> list[float]:
        """For each sync packet, its distance in frames from the line of its segment's first."""
        firsts: dict[int, SyncRecord] = {}
        deviations: list[float] = []
        for sync in self.sync_packets:
            base = firsts.setdefault(sync.segment, sync)
            deviations.append(sync_line_deviation(base, sync))
        return deviations

    def syncs_consistent(self, tolerance_frames: float = 1.0) -> bool:
        """True when every sync packet lies on its segment's line within the tolerance."""
        return all(abs(d) <= tolerance_frames for d in self.sync_line_deviations())

    def offset_estimate(self) -> float:
        """Median sender-minus-receiver clock offset in seconds from the timing exchanges."""
        if not self.timing:
            raise EmulatorError("no timing reply received")
        return statistics.median(record.offset_s for record in self.timing)

    def play_time_local(self, frame: int) -> float:
        """Receiver-clock time (Unix seconds) at which RTP frame ``frame`` is audible."""
        return ntp_to_unix(self.play_time_ntp(frame)) - self.offset_estimate()

    def late_packets(self) -> list[AudioPacketRecord]:
        """Audio packets that arrived after their own play time."""
        return [p for p in self.audio_packets if p.received_at > self.play_time_local(p.rtptime)]
