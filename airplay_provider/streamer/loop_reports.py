"""What the stream loop reports: the start, elapsed time, stats; and the RTSP keepalive.

`[STATUS] started`/`playing` once the first packet of a (re)start left (with the stream type,
codec, bits and rate), `elapsed` every second
while playing, `stats` every `STATS_EVERY_S`, and an RTSP OPTIONS every `KEEPALIVE_S`.
`LoopReports` holds these methods of `StreamLoop` (stream_loop.py); the state they use lives in
the loop and is declared below.
"""

from __future__ import annotations

import asyncio

from airplay_provider.protocol.alac_encoder import AlacEncoder
from airplay_provider.protocol.pcm_format import PcmFormat
from airplay_provider.protocol.schedule import Timeline
from airplay_provider.protocol.streamer_status import (
    CODEC_ALAC,
    CODEC_PCM_ESCAPE,
    Elapsed,
    Error,
    Playing,
    Started,
    Stats,
)
from airplay_provider.protocol.timing import frames_to_ns
from airplay_provider.streamer.clock import SenderClock
from airplay_provider.streamer.pacer import Pacer
from airplay_provider.streamer.rtsp_client import RtspClientError
from airplay_provider.streamer.status import StatusWriter
from airplay_provider.streamer.transport import Transport

KEEPALIVE_S = 25.0
STATS_EVERY_S = 5.0


class LoopReports:
    """The reporting part of `StreamLoop` (a mixin: its state lives in the loop)."""

    # The loop's state these methods read and write (set in `StreamLoop.__init__`).
    status: StatusWriter
    clock: SenderClock
    timeline: Timeline
    pacer: Pacer
    transport: Transport
    seq: int
    stats: dict[str, int]
    stopping: bool
    pcm: PcmFormat
    alac: AlacEncoder | None

    @property
    def next_sample(self) -> int:
        raise NotImplementedError

    @property
    def paused(self) -> bool:
        raise NotImplementedError

    def _wake(self) -> None:
        raise NotImplementedError

    def _report_start(self) -> None:
        pacer = self.pacer
        actual = self.timeline.play_ntp_of(self.next_sample)
        fields = {
            "requested_ntp": pacer.requested_ntp,
            "actual_ntp": actual,
            "first_sample": self.next_sample,
            "seq": self.seq,
            "rtptime": self.timeline.rtp_of(self.next_sample),
            "skipped_frames": self.next_sample - pacer.requested_first_sample,
        }
        stream_type = self.transport.stream_type
        fields.update(bits=self.pcm.bits, rate=self.pcm.rate)
        codec = CODEC_PCM_ESCAPE if self.alac is None else CODEC_ALAC
        if pacer.resumes == 0:
            self.status.log(
                f"restarting w/o pause, first sample {self.next_sample} at NTP {actual}"
            )
            self.status.emit(Started(**fields, stream_type=stream_type, codec=codec))
        else:
            self.status.log(f"restarting w/ pause, sample {self.next_sample} at NTP {actual}")
        self.status.emit(Playing(**fields, stream_type=stream_type, codec=codec))

    async def _periodic(self) -> None:
        """Elapsed/stats reports and RTSP keepalive."""
        loop = asyncio.get_running_loop()
        last_keepalive = last_stats = loop.time()
        while not self.stopping:
            await asyncio.sleep(1.0)
            now = loop.time()
            if not self.paused and not self.pacer.first_packet:
                played = self.timeline.sample_at(self.clock.ntp())
                if played >= 0:
                    ms = frames_to_ns(played, self.timeline.rate) // 1_000_000
                    self.status.log(f"elapsed milliseconds: {ms}", level=5)
                    self.status.emit(Elapsed(ms))
            if now - last_stats >= STATS_EVERY_S:
                last_stats = now
                self.status.emit(Stats(**self.stats))
            rtsp = self.transport.rtsp
            if now - last_keepalive >= KEEPALIVE_S and rtsp is not None:
                last_keepalive = now
                try:
                    await rtsp.request("OPTIONS", "*")
                except RtspClientError as exc:
                    self.status.emit(Error(exc.code, f"keepalive: {exc}"))
                    self.stopping = True
                    self._wake()
