"""The FIFO command handler against a strict stand-in of its `StreamControl` (no sockets)."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from airplay_provider.protocol.streamer_status import parse_status
from airplay_provider.streamer.raop_commands import (
    METADATA_PROGRESS,
    METADATA_TEXT,
    RaopCommandHandler,
    StreamControl,
)
from airplay_provider.streamer.status import StatusWriter


class FakeStream:
    """Records what the handler asked of the stream; answers like a live RTSP session."""

    def __init__(self, *, metadata: tuple[int, ...] = (METADATA_TEXT,), answer: int = 200) -> None:
        self.out = io.StringIO()
        self._status = StatusWriter(self.out)
        self._paused = False
        self.metadata = metadata
        self.answer = answer
        self.calls: list[tuple[str, Any]] = []

    @property
    def status(self) -> StatusWriter:
        return self._status

    @property
    def paused(self) -> bool:
        return self._paused

    def metadata_allowed(self, kind: int) -> bool:
        return kind in self.metadata

    def current_rtp(self) -> int:
        return 4242

    async def set_parameter(self, headers: dict[str, str], body: bytes) -> int | None:
        self.calls.append(("SET_PARAMETER", (headers, body)))
        return self.answer

    async def pause(self) -> None:
        self.calls.append(("pause", None))
        self._paused = True

    def resume(self, at_ntp: int | None) -> None:
        self.calls.append(("resume", at_ntp))
        self._paused = False

    def stop(self) -> None:
        self.calls.append(("stop", None))

    def discard_input(self) -> int:
        self.calls.append(("discard", None))
        return 1234

    def events(self) -> list[object]:
        return [e for line in self.out.getvalue().splitlines() if (e := parse_status(line))]


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_pause_then_play_at_an_instant_run_in_order() -> None:
    stream = FakeStream()
    control: StreamControl = stream
    handler = RaopCommandHandler(control)
    handler.handle("ACTION", "PAUSE")
    handler.handle("NTPSTART", "123456789")
    handler.handle("ACTION", "play")
    await settle()
    assert stream.calls == [("pause", None), ("resume", 123456789)]
    handler.handle("ACTION", "PLAY")  # the instant is used once
    await settle()
    assert stream.calls[-1] == ("resume", None)
    handler.close()


async def test_volume_is_reported_only_once_the_receiver_took_it() -> None:
    stream = FakeStream()
    handler = RaopCommandHandler(stream)
    handler.handle("VOLUME", "30")
    handler.handle("VOLUME", "101")  # out of range: ignored
    await settle()
    [(method, (headers, body))] = stream.calls
    assert method == "SET_PARAMETER"
    assert headers == {"Content-Type": "text/parameters"}
    assert body.startswith(b"volume: -")
    assert [type(e).__name__ for e in stream.events()] == ["Volume"]
    stream.answer = 500
    handler.handle("VOLUME", "40")
    await settle()
    assert [type(e).__name__ for e in stream.events()] == ["Volume"]  # refused: no report
    handler.close()


async def test_metadata_goes_only_where_the_receiver_takes_it() -> None:
    stream = FakeStream(metadata=(METADATA_TEXT,))
    handler = RaopCommandHandler(stream)
    handler.handle("TITLE", "Song")
    handler.handle("ARTIST", "Band")
    handler.handle("ACTION", "SENDMETA")
    handler.handle("PROGRESS", "12")  # md=2 not listed: not sent
    await settle()
    assert len(stream.calls) == 1
    headers = stream.calls[0][1][0]
    assert headers["RTP-Info"] == "rtptime=4242"
    progress = FakeStream(metadata=(METADATA_PROGRESS,))
    handler2 = RaopCommandHandler(progress)
    handler2.handle("DURATION", "200")
    handler2.handle("PROGRESS", "12")
    await settle()
    body = progress.calls[0][1][1]
    start = (4242 - 12 * 44100) & 0xFFFFFFFF
    assert body == f"progress: {start}/4242/{(start + 200 * 44100) & 0xFFFFFFFF}\r\n".encode()
    handler.close()
    handler2.close()


async def test_flush_pauses_drops_input_and_resumes() -> None:
    stream = FakeStream()
    handler = RaopCommandHandler(stream)
    handler.handle("ACTION", "FLUSH")
    await settle()
    assert stream.calls == [("pause", None), ("discard", None), ("resume", None)]
    assert [type(e).__name__ for e in stream.events()] == ["Flushed"]
    handler.handle("ACTION", "STOP")
    assert stream.calls[-1] == ("stop", None)
    handler.close()
