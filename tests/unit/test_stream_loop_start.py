"""The loop reports a start exactly once even when its first real packet is skipped as late.

A receiver that sends no timing request makes the transport wait `TIMING_WAIT_S` (0.4 s) after
the start was placed (-ntpstart): longer than the 230 ms a start is given, so the first real
packet is late and skipped. The start must then be reported with the first packet that left.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from pathlib import Path

from airplay_provider.protocol.streamer_status import Connected, parse_status_fields
from airplay_provider.protocol.timing import FRAMES_PER_PACKET, SAMPLE_RATE
from airplay_provider.streamer.clock import SenderClock
from airplay_provider.streamer.pacer import PREROLL_FRAMES
from airplay_provider.streamer.raop_options import parse_options
from airplay_provider.streamer.rtsp_client import RtspClient
from airplay_provider.streamer.status import StatusWriter
from airplay_provider.streamer.stream_loop import StreamLoop
from airplay_provider.streamer.transport import Link, LoopView, Slot
from airplay_provider.streamer.udp_audio import TIMING_WAIT_S


class SilentTimingTransport:
    """A transport whose receiver never asks for timing: `open_audio` waits the whole bound,
    as `UdpAudio.open_audio` does. Records every packet's slot."""

    def __init__(self, loop: LoopView) -> None:
        self.loop = loop
        self.slots: list[Slot] = []
        self.preroll_end: int | None = None

    @property
    def rtsp(self) -> RtspClient | None:
        return None

    @property
    def stream_type(self) -> str | None:
        return None

    async def connect(self) -> Link:
        self.loop.place_start()
        return Link(log="connected", event=Connected(host="127.0.0.1", port=5000, latency_ms=2000))

    async def open_audio(self) -> None:
        await asyncio.sleep(TIMING_WAIT_S)

    async def started(self) -> None:
        return None

    def send(self, pcm: bytes, slot: Slot) -> bytes:
        self.slots.append(slot)
        return pcm

    def send_copy(self, wire: bytes) -> bool:
        return False

    async def flush(self, slot: Slot) -> None:
        raise AssertionError("no pause in this test")

    def resumed(self) -> None:
        raise AssertionError("no resume in this test")

    async def set_parameter(self, headers: dict[str, str], body: bytes) -> int | None:
        return None

    def handle_command(self, key: str, value: str) -> bool:
        return False

    async def teardown(self) -> bool:
        return True

    def close(self) -> None:
        return None


def test_a_skipped_first_real_packet_still_reports_the_start_once() -> None:
    clock = SenderClock()
    ntpstart = clock.ntp() + (50 << 32) // 1000  # 50 ms from now: the session's near start
    options = parse_options(["-ntpstart", str(ntpstart), "127.0.0.1", "-"])
    out = io.StringIO()
    transports: list[SilentTimingTransport] = []

    def make(loop: LoopView) -> SilentTimingTransport:
        transports.append(SilentTimingTransport(loop))
        return transports[0]

    with tempfile.TemporaryDirectory() as tmp:
        pcm = Path(tmp) / "in.pcm"
        pcm.write_bytes(bytes(range(256)) * (SAMPLE_RATE * 4 // 256))  # 1 s of audio
        with pcm.open("rb") as source:
            loop = StreamLoop(
                options, StatusWriter(out), make, clock=clock, input_fd=source.fileno()
            )
            assert asyncio.run(loop.run()) == 0

    statuses = [
        parsed for line in out.getvalue().splitlines() if (parsed := parse_status_fields(line))
    ]
    started = [fields for name, fields in statuses if name == "started"]
    playing = [fields for name, fields in statuses if name == "playing"]
    assert len(started) == 1, out.getvalue()
    assert len(playing) == 1, out.getvalue()
    assert started[0] == playing[0]

    preroll_end = loop.pacer.preroll_end
    slots = transports[0].slots
    assert [s.sample for s in slots[:10]] == [
        preroll_end - PREROLL_FRAMES + i * FRAMES_PER_PACKET for i in range(10)
    ]
    first_real = slots[10]
    # the scenario: the first real packet (preroll_end) was skipped as late
    assert first_real.sample > preroll_end
    assert loop.stats["late"] >= first_real.sample - preroll_end
    fields = started[0]
    assert int(fields["first_sample"]) == first_real.sample
    assert int(fields["seq"]) == first_real.seq
    assert int(fields["rtptime"]) == first_real.rtptime
    assert int(fields["actual_ntp"]) == loop.timeline.play_ntp_of(first_real.sample)
    assert int(fields["requested_ntp"]) == ntpstart
    assert int(fields["skipped_frames"]) == first_real.sample  # sample 0 was asked for
