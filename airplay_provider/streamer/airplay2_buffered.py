"""AirPlay 2 buffered audio (stream type 103): SETUP, the TCP data connection, the anchor.

Packets leave a deep lead ahead of their play time over TCP (nothing to resend; a Wi-Fi blackout
shorter than the lead loses nothing). Playback is scheduled by `SETRATEANCHORTIME`: frame
`rtp_of(s)` plays at `play_ntp_of(s)` on our clock (PTP or NTP), so input sample k is audible at
`ntpstart + k/rate` as on realtime streams. The SETUP and every packet's SSRC name the stream's
format (ALAC 44100/16, or 48000/24 with `--bits 24 --rate 48000`). Strict receivers answer the
anchor 400 until they have measured our clock: it is retried every 0.5 s for at most
`ANCHOR_WAIT_S`. Pause is rate 0 then `FLUSHBUFFERED`; the resume anchors the restarted
timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from airplay_provider.protocol import ap2
from airplay_provider.protocol.alac_encoder import encoded_escape_bytes
from airplay_provider.protocol.ap2_buffered import (
    buffered_header,
    buffered_ssrc,
    flush_buffered,
    frame_packet,
    network_time_of_ns,
    network_time_of_ntp,
    pause_rate,
    set_rate_anchor_time,
    unwrap_seq,
)
from airplay_provider.protocol.streamer_status import ErrorCode, StreamerError, Waiting
from airplay_provider.protocol.timing import FRAMES_PER_PACKET, unix_ns_from_ntp
from airplay_provider.streamer.airplay2_control import PLIST_HEADERS, Ap2Control
from airplay_provider.streamer.raop_setup import expect_ok
from airplay_provider.streamer.rtsp_client import RtspClient, RtspClientError
from airplay_provider.streamer.transport import LoopView, Slot

BUFFERED_LEAD_MS = 6000  # how far ahead audio leaves: a blackout plus TCP recovery (< backlog)
PACKET_OVERHEAD_BYTES = 2 + 12 + 16 + 8  # length prefix, header, tag, nonce
CONNECT_TIMEOUT_S = 3.0
ANCHOR_WAIT_S = 10.0
ANCHOR_RETRY_S = 0.5
#: Following a receiver's own (drifting) clock: how often the anchor line is checked, and how
#: far (frames) it may drift before it is re-anchored. The anchor is set half a frame ahead in
#: the drift's direction, so the error stays within half a frame either way; a new fit that
#: moves the line back against that lead (a measured correction, not drift) re-anchors too once
#: it moved `REANCHOR_BACK_FRAMES`, so the error stays under 0.75 frame.
DRIFT_CHECK_S = 0.05
REANCHOR_FRAMES = 1.0
REANCHOR_BACK_FRAMES = 0.25
MAX_UNSENT_BYTES = 8 * 2**20  # ~45 s of audio the receiver has not taken: it is gone
# After a blackout TCP retransmits only when its backed-off timer fires: with the default cap
# (120 s) a 3 s blackout can stall the stream ~6 s, beyond the lead. Capped at 1 s (the least
# the kernel takes), the stream resumes within a second of the link coming back.
TCP_RTO_MAX_MS = getattr(socket, "TCP_RTO_MAX_MS", 44)  # linux/tcp.h, since 6.15
RTO_MAX_MS = 1000


class BufferedAudio:
    """The type-103 stream of one AirPlay 2 session."""

    def __init__(self, loop: LoopView, control: Ap2Control) -> None:
        self.loop = loop
        self.control = control
        self.sealer: ap2.AudioSealer | None = None
        self.data_port = 0
        self.writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._seq23: int | None = None
        self.pcm = loop.opts.pcm
        self.ssrc = buffered_ssrc(self.pcm)
        self.anchors = 0
        # A pause makes a pending anchor stale: anchors and pauses take turns (`_turn`), and an
        # anchor of an older `_generation` is dropped, so rate 1 never follows rate 0 unasked.
        self._turn = asyncio.Lock()
        self._generation = 0
        #: Following the receiver's clock: the anchored line (sample, its exact time on the
        #: receiver's clock before the half-frame lead) and re-anchors for its drift.
        self._line: tuple[int, int] | None = None
        self._lead_sign = 0  # the direction the line's anchor was led in
        self.reanchors = 0

    async def setup(self, rtsp: RtspClient, session_id: int) -> None:
        """SETUP stream type 103 (no latencyMin/Max, no control port); fix the lead."""
        shk = os.urandom(ap2.AUDIO_KEY_BYTES)
        body = ap2.setup_stream(
            shk=shk,
            control_port=0,
            connection_id=session_id,
            stream_type=ap2.STREAM_TYPE_BUFFERED,
            pcm=self.pcm,
        )
        response = await rtsp.request("SETUP", self.control.uri, headers=PLIST_HEADERS, body=body)
        expect_ok("SETUP stream", response.status)
        try:
            reply = ap2.parse_setup_stream_reply(response.body, buffered=True)
        except ap2.Ap2Error as exc:
            raise StreamerError(ErrorCode.BAD_RESPONSE, str(exc)) from exc
        self.sealer = ap2.AudioSealer(shk)
        self.data_port = reply.data_port
        lead_ms = BUFFERED_LEAD_MS
        if reply.audio_buffer_size:  # keep the lead inside three quarters of its buffer
            lead_ms = min(lead_ms, reply.audio_buffer_size * 750 // self.bytes_per_second)
        self.loop.set_lead(max(lead_ms, self.loop.opts.latency_ms))

    @property
    def bytes_per_second(self) -> int:
        """TCP bytes a second of uncompressed (escape) packets of this stream's format."""
        escape = encoded_escape_bytes(self.pcm.bits)
        return (escape + PACKET_OVERHEAD_BYTES) * self.pcm.rate // FRAMES_PER_PACKET

    async def open(self, rtsp: RtspClient) -> None:
        """Connect the TCP data connection (bounded)."""
        bind = self.loop.opts.bind_address
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    rtsp.peer_address, self.data_port, local_addr=(bind, 0) if bind else None
                ),
                CONNECT_TIMEOUT_S,
            )
        except (OSError, TimeoutError) as exc:
            raise StreamerError(
                ErrorCode.CONNECT_FAILED, f"buffered audio connection: {exc!r}"
            ) from exc
        self.writer = writer
        sock = writer.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError):  # Linux >= 6.15 only
            sock.setsockopt(socket.IPPROTO_TCP, TCP_RTO_MAX_MS, RTO_MAX_MS)
        self._reader_task = asyncio.ensure_future(self._watch(reader))

    async def _watch(self, reader: asyncio.StreamReader) -> None:
        """The receiver sends nothing here: EOF or a reset means it is gone."""
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.read(4096):
                pass
        if not self.loop.stopping:
            self.loop.receiver_gone("receiver gone: it closed the buffered audio connection")

    # ---- the anchor -----------------------------------------------------------------------------

    def _anchor_body(self) -> bytes:
        """Frame `rtp_of(s)` plays at `play_ntp_of(s)` on our clock, s the next packet (the
        one audible now when we follow the receiver's clock: its pace differs from ours)."""
        timeline, sample = self.loop.timeline, self.loop.next_sample
        following = self.control.follow_receiver and self.control.peer_clock.locked
        if following:
            sample = timeline.sample_at(self.loop.clock.ntp())
        play_ntp = timeline.play_ntp_of(sample)
        lease = self.control.lease
        if lease is not None:
            ptp_ns = unix_ns_from_ntp(play_ntp) + self.control.ptp_minus_unix_ns
            peer_ns, clock_id = self.control.network_time(ptp_ns)
            network = network_time_of_ns(peer_ns)
            if following:
                lead = self._lead_ns()
                self._line, self._lead_sign = (sample, peer_ns), (lead > 0) - (lead < 0)
                network = network_time_of_ns(peer_ns + lead)
        else:
            network, clock_id = network_time_of_ntp(play_ntp), 0
        return set_rate_anchor_time(
            rtp_time=timeline.rtp_of(sample), network_time=network, clock_id=clock_id
        )

    def _lead_ns(self) -> int:
        """Half a frame in the direction the receiver's clock drifts."""
        report = self.control.peer_clock.report
        rate = report.translation.rate_ppb if report and report.translation else 0
        half = 500_000_000 // self.loop.timeline.rate
        return half if rate > 0 else -half if rate < 0 else 0

    def drift_frames(self) -> float:
        """How far the receiver's clock has run from the anchored line, in frames, now."""
        if self._line is None:
            return 0.0
        timeline = self.loop.timeline
        sample = timeline.sample_at(self.loop.clock.ntp())
        ptp_ns = unix_ns_from_ntp(timeline.play_ntp_of(sample)) + self.control.ptp_minus_unix_ns
        ideal, _ = self.control.network_time(ptp_ns)
        anchored, at = self._line
        line = at + (sample - anchored) * 1_000_000_000 // timeline.rate
        return (ideal - line) * timeline.rate / 1e9

    async def _follow_drift(self) -> None:
        """Re-anchor whenever the receiver's own clock has drifted a frame from the line."""
        while not self.loop.stopping:
            await asyncio.sleep(DRIFT_CHECK_S)
            if self.loop.paused or self._line is None or not self.control.peer_clock.locked:
                continue
            drift = self.drift_frames()
            if abs(drift) >= REANCHOR_FRAMES or drift * self._lead_sign <= -REANCHOR_BACK_FRAMES:
                self.reanchors += 1
                await self.anchor_in_background()

    async def anchor(self, *, initial: bool = True) -> None:
        """Rate 1 at the timeline's anchor; retried while the receiver answers 400 (at the
        first start without `-ntpstart`, each retry counts the start from now again)."""
        rtsp = self.control.rtsp
        assert rtsp is not None
        if self.control.follow_receiver and not self.control.peer_clock.locked:
            await self.control.wait_receiver_clock()  # an anchor on our clock means nothing
        clock = asyncio.get_running_loop()
        deadline = clock.time() + ANCHOR_WAIT_S
        generation = self._generation
        tries = 0
        while True:
            async with self._turn:
                if generation != self._generation or self.loop.paused:
                    return  # paused (meanwhile): the resume brings its own anchor
                body = self._anchor_body()
                response = await rtsp.request(
                    "SETRATEANCHORTIME", self.control.uri, headers=PLIST_HEADERS, body=body
                )
            tries += 1
            if response.status == 200:
                self.anchors += 1
                if tries > 1:
                    self.loop.status.log(f"receiver took the anchor after {tries} tries")
                return
            if response.status != 400:
                expect_ok("SETRATEANCHORTIME", response.status)
            if clock.time() + ANCHOR_RETRY_S > deadline:
                raise StreamerError(
                    ErrorCode.CLOCK_NOT_READY,
                    f"receiver refused the anchor for {ANCHOR_WAIT_S:.0f} s "
                    "(400: it has not measured our clock)",
                )
            if tries == 1:
                self.loop.status.log(
                    "receiver has not measured our clock yet (400); retrying the anchor", level=2
                )
                self.loop.status.emit(Waiting("receiver_clock", int(ANCHOR_WAIT_S)))
            await asyncio.sleep(ANCHOR_RETRY_S)
            if initial:
                self.loop.replace_start()

    async def start(self) -> None:
        """Anchor the start. Without `-ntpstart` the loop waits for it (each refusal moves the
        start); with one, audio already flows meanwhile (the receiver buffers it), so a slow
        clock measurement does not make the promised start late."""
        if self.loop.opts.ntpstart is None:
            await self.anchor()
        else:
            self.loop.spawn(self.anchor_in_background())
        if self.control.follow_receiver:
            self.loop.spawn(self._follow_drift())

    async def anchor_in_background(self) -> None:
        """An anchor while audio flows (a start with `-ntpstart`, a resume); failure is fatal."""
        try:
            await self.anchor(initial=False)
        except StreamerError as exc:  # RtspClientError included
            self.loop.fail(exc)

    # ---- packets, pause ------------------------------------------------------------------------

    def seq23(self, seq16: int) -> int:
        """The 23-bit sequence number of the loop's 16-bit `seq16` (at or after the last one)."""
        return seq16 if self._seq23 is None else unwrap_seq(self._seq23, seq16)

    def send(self, pcm: bytes, slot: Slot) -> bytes:
        """Header, sealed ALAC, framed on the TCP stream; the packet (without the frame)."""
        assert self.sealer is not None
        assert self.writer is not None
        self._seq23 = self.seq23(slot.seq)
        header = buffered_header(seq=self._seq23, timestamp=slot.rtptime, ssrc=self.ssrc)
        packet = self.sealer.seal(header, self.loop.alac_frame(pcm))
        self.writer.write(frame_packet(packet))
        unsent = self.writer.transport.get_write_buffer_size()
        if unsent > MAX_UNSENT_BYTES:
            self.loop.receiver_gone(f"receiver gone: it stopped taking audio ({unsent} bytes)")
        return packet

    async def flush(self, slot: Slot) -> None:
        """Rate 0, then FLUSHBUFFERED up to the next unsent packet (a pending anchor is void)."""
        self._generation += 1
        body = flush_buffered(until_seq=self.seq23(slot.seq), until_ts=slot.rtptime)
        async with self._turn:
            await self.control.plist_request("SETRATEANCHORTIME", pause_rate(), what="pause")
            await self.control.plist_request("FLUSHBUFFERED", body, what="FLUSHBUFFERED")

    def stop_watching(self) -> None:
        """Our TEARDOWN is coming: the receiver closing the connection is expected now."""
        if self._reader_task is not None:
            self._reader_task.cancel()
            self._reader_task = None

    def close(self) -> None:
        """Close the data connection (idempotent)."""
        self.stop_watching()
        if self.writer is not None:
            with contextlib.suppress(RtspClientError, OSError, RuntimeError):
                self.writer.close()
            self.writer = None
