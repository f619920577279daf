"""A pause while the tail drains (input ended, its last packets not yet played) keeps the
unplayed input: after the resume it is sent again and plays, then the tail drains once more.

Before, the drain ran on to teardown whatever was paused: the last second(s) of a stream (up to
6 s on buffered AirPlay 2, which sends that far ahead) were lost by a pause there.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from pathlib import Path

from airplay_provider.protocol.streamer_status import Connected, parse_status_fields
from airplay_provider.protocol.timing import FRAMES_PER_PACKET, SAMPLE_RATE
from airplay_provider.streamer.clock import SenderClock
from airplay_provider.streamer.pacer import Phase
from airplay_provider.streamer.raop_options import parse_options
from airplay_provider.streamer.rtsp_client import RtspClient
from airplay_provider.streamer.status import StatusWriter
from airplay_provider.streamer.stream_loop import StreamLoop
from airplay_provider.streamer.transport import Link, LoopView, Slot

BYTES_PER_FRAME = 4
INPUT_FRAMES = SAMPLE_RATE // 2  # 0.5 s: all of it is sent ahead at once (latency 1 s)


class RecordingTransport:
    """Records what is sent; pauses the stream once while its tail drains (a quarter of the
    input played), resumes at once."""

    def __init__(self, view: LoopView, receiver_port: int) -> None:
        self.view = view
        self.receiver_port = receiver_port
        self.client: RtspClient | None = None
        self.stream: StreamLoop | None = None
        self.sent: list[tuple[Slot, bytes]] = []
        self.flushed_at: int | None = None  # len(sent) at the flush
        self.resumed_at: int | None = None
        self._pausing: asyncio.Task[None] | None = None

    @property
    def rtsp(self) -> RtspClient | None:
        return self.client

    @property
    def stream_type(self) -> str | None:
        return None

    async def connect(self) -> Link:
        # a pause needs an RTSP session: a loopback peer that keeps the connection open
        self.client = await RtspClient.connect("127.0.0.1", self.receiver_port, timeout=2.0)
        self.view.place_start()
        return Link(log="connected", event=Connected(host="127.0.0.1", port=5000, latency_ms=1000))

    async def open_audio(self) -> None:
        return None

    async def started(self) -> None:
        return None

    def send(self, pcm: bytes, slot: Slot) -> bytes:
        self.sent.append((slot, pcm))
        stream = self.stream
        if (
            stream is not None
            and self._pausing is None
            and stream.pacer.phase is Phase.DRAINING
            and stream.timeline.sample_at(stream.clock.ntp()) > INPUT_FRAMES // 4
        ):  # the input all sent, a quarter of it played
            self._pausing = asyncio.get_running_loop().create_task(self._pause_and_resume(stream))
        return pcm

    async def _pause_and_resume(self, stream: StreamLoop) -> None:
        await stream.pause()
        stream.resume(None)

    def send_copy(self, wire: bytes) -> bool:
        return False

    async def flush(self, slot: Slot) -> None:
        self.flushed_at = len(self.sent)

    def resumed(self) -> None:
        self.resumed_at = len(self.sent)

    async def set_parameter(self, headers: dict[str, str], body: bytes) -> int | None:
        return None

    def handle_command(self, key: str, value: str) -> bool:
        return False

    async def teardown(self) -> bool:
        return True

    def close(self) -> None:
        if self.client is not None:
            self.client.connection.writer.close()


def test_a_pause_while_the_tail_drains_keeps_the_unplayed_input_for_the_resume() -> None:
    clock = SenderClock()
    options = parse_options(["-latency", "1000", "127.0.0.1", "-"])
    out = io.StringIO()
    audio = bytes((i * 7 + i // 256) & 0xFF for i in range(INPUT_FRAMES * BYTES_PER_FRAME))
    made: list[RecordingTransport] = []
    peers: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)

    async def run(source: int) -> int:
        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        def make(view: LoopView) -> RecordingTransport:
            made.append(RecordingTransport(view, port))
            return made[0]

        stream = StreamLoop(options, StatusWriter(out), make, clock=clock, input_fd=source)
        made[0].stream = stream
        try:
            return await stream.run()
        finally:
            for writer in peers:
                writer.close()
            server.close()
            await server.wait_closed()

    with tempfile.TemporaryDirectory() as tmp:
        pcm = Path(tmp) / "in.pcm"
        pcm.write_bytes(audio)
        with pcm.open("rb") as source:
            assert asyncio.run(run(source.fileno())) == 0

    transport = made[0]
    assert transport.flushed_at is not None, out.getvalue()
    assert transport.resumed_at is not None
    statuses = [p for line in out.getvalue().splitlines() if (p := parse_status_fields(line))]
    events = [name for name, _ in statuses]
    assert events.count("eof") == 2, out.getvalue()  # drained, paused, resumed, drained again
    assert events.index("paused") < len(events) - 1 - events[::-1].index("eof")
    resumed_from = int(
        [fields for name, fields in statuses if name == "playing"][-1]["first_sample"]
    )

    # Everything after the resume (after its silent pre-roll): the unplayed input again, sample
    # by sample, in order.
    after = transport.sent[transport.resumed_at :]
    real = [(slot, pcm) for slot, pcm in after if resumed_from <= slot.sample < INPUT_FRAMES]
    assert INPUT_FRAMES // 4 < resumed_from < INPUT_FRAMES // 2  # what had played is not resent
    assert real, "nothing of the input was sent after the resume"
    assert real[0][0].sample == resumed_from
    resent = b"".join(pcm for _, pcm in real)
    expected = audio[resumed_from * BYTES_PER_FRAME :]
    assert resent[: len(expected)] == expected
    assert [slot.sample for slot, _ in real] == list(
        range(resumed_from, resumed_from + FRAMES_PER_PACKET * len(real), FRAMES_PER_PACKET)
    )
