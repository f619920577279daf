"""FIFO commands for the RAOP streamer: volume, transport actions, metadata, artwork, progress.

Commands run one at a time in arrival order on a worker task, so `ACTION=PAUSE` followed at once
by `ACTION=PLAY` is applied in that order. A failing metadata request is logged, never fatal.
The handler sees its stream only through `StreamControl` (no import of the streamer).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from airplay_provider.protocol.dmap import track_metadata
from airplay_provider.protocol.streamer_status import Artwork, Flushed, Metadata, Volume
from airplay_provider.protocol.timing import SAMPLE_RATE, rtp_add, volume_to_db
from airplay_provider.streamer.rtsp_client import RtspClientError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from airplay_provider.streamer.status import StatusWriter

MAX_ARTWORK_BYTES = 4 * 2**20
ARTWORK_TIMEOUT_S = 5.0
METADATA_TEXT = 0
METADATA_ARTWORK = 1
METADATA_PROGRESS = 2


def artwork_content_type(data: bytes) -> str | None:
    """`image/jpeg` or `image/png` from the magic bytes; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return None


def load_artwork(location: str) -> bytes:
    """Read artwork from a local path or an http(s) URL (blocking; run in a thread)."""
    if location.startswith(("http://", "https://")):
        import urllib.request  # noqa: PLC0415 - only artwork needs it; keeps start-up fast

        with urllib.request.urlopen(location, timeout=ARTWORK_TIMEOUT_S) as response:  # noqa: S310
            data: bytes = response.read(MAX_ARTWORK_BYTES + 1)
    else:
        path = Path(location.removeprefix("file://"))
        with path.open("rb") as handle:
            data = handle.read(MAX_ARTWORK_BYTES + 1)
    if len(data) > MAX_ARTWORK_BYTES:
        raise ValueError(f"artwork larger than {MAX_ARTWORK_BYTES} bytes")
    return data


class StreamControl(Protocol):
    """What the command handler may do to its stream (`StreamLoop` provides it)."""

    @property
    def status(self) -> StatusWriter:
        """Where log and `[STATUS]` lines go."""
        ...

    @property
    def paused(self) -> bool:
        """Paused by a command (until the resume)."""
        ...

    def metadata_allowed(self, kind: int) -> bool:
        """The receiver takes metadata of this kind (0 text, 1 artwork, 2 progress)."""
        ...

    def current_rtp(self) -> int:
        """RTP timestamp of the sample playing now (metadata is stamped with it)."""
        ...

    async def set_parameter(self, headers: dict[str, str], body: bytes) -> int | None:
        """SET_PARAMETER on the session; the answer's status, None when there is no session."""
        ...

    async def pause(self) -> None:
        """Stop sending and flush the receiver (keeps unplayed input)."""
        ...

    def resume(self, at_ntp: int | None) -> None:
        """Continue, audible at `at_ntp` (None: soon)."""
        ...

    def stop(self) -> None:
        """Leave the stream now."""
        ...

    def discard_input(self) -> int:
        """Drop all buffered input; the number of samples dropped."""
        ...


class RaopCommandHandler:
    """Turns `KEY=VALUE` commands into RTSP requests and streamer actions."""

    def __init__(self, streamer: StreamControl, *, rate: int = SAMPLE_RATE) -> None:
        self.streamer = streamer
        self.rate = rate  # RTP frames per second of the stream (progress is in RTP time)
        self.title: str | None = None
        self.artist: str | None = None
        self.album: str | None = None
        self.duration_s: int | None = None
        self.resume_at_ntp: int | None = None
        self.volume: int | None = None
        self._queue: asyncio.Queue[Callable[[], Awaitable[None]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._artwork_fetch: asyncio.Task[None] | None = None

    def handle(self, key: str, value: str) -> None:
        """Entry point for the FIFO reader (called on the event loop)."""
        streamer = self.streamer
        if key == "TITLE":
            self.title = value
        elif key == "ARTIST":
            self.artist = value
        elif key == "ALBUM":
            self.album = value
        elif key == "DURATION":
            self.duration_s = _int_or_none(value)
        elif key == "NTPSTART":
            self.resume_at_ntp = _int_or_none(value)
        elif key == "PROGRESS":
            position = _int_or_none(value)
            if position is not None:
                self._enqueue(lambda: self.send_progress(position))
        elif key == "ARTWORK":
            self._fetch_artwork(value)
        elif key == "VOLUME":
            volume = _int_or_none(value)
            if volume is None or not 0 <= volume <= 100:
                streamer.status.log(f"ignoring VOLUME={value!r}: expected 0..100", level=2)
            else:
                self._enqueue(lambda: self.send_volume(volume))
        elif key == "ACTION":
            self._action(value.upper())
        else:
            streamer.status.log(f"unknown command {key}={value!r}", level=2)

    def _action(self, action: str) -> None:
        streamer = self.streamer
        if action == "PAUSE":
            self._enqueue(streamer.pause)
        elif action == "PLAY":
            at_ntp, self.resume_at_ntp = self.resume_at_ntp, None

            async def play() -> None:
                streamer.resume(at_ntp)

            self._enqueue(play)
        elif action == "STOP":
            streamer.status.log("Stopped at : on request")
            streamer.stop()
        elif action == "SENDMETA":
            self._enqueue(self.send_text_metadata)
        elif action == "FLUSH":
            self._enqueue(self.flush)
        else:
            streamer.status.log(f"unknown action {action!r}", level=2)

    def _enqueue(self, job: Callable[[], Awaitable[None]]) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.ensure_future(self._work())
        self._queue.put_nowait(job)

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            job = await self._queue.get()
            try:
                await job()
            except RtspClientError as exc:
                self.streamer.status.log(f"command failed: {exc}", level=2)
            except Exception as exc:
                self.streamer.status.log(f"command failed: {exc!r}", level=2)

    def _fetch_artwork(self, location: str) -> None:
        """Load artwork beside the command queue (a slow image host must never hold up PLAY or
        PAUSE); the SET_PARAMETER joins the queue once the bytes are here. A newer ARTWORK
        replaces a fetch still running."""
        if self._artwork_fetch is not None:
            self._artwork_fetch.cancel()

        async def fetch() -> None:
            try:
                data = await _in_daemon_thread(load_artwork, location)
            except (OSError, ValueError) as exc:
                self.streamer.status.log(f"cannot load artwork {location!r}: {exc}", level=2)
                return
            self._enqueue(lambda: self.send_artwork_data(data))

        self._artwork_fetch = asyncio.ensure_future(fetch())

    def close(self) -> None:
        """Stop the worker and any artwork fetch."""
        if self._artwork_fetch is not None:
            self._artwork_fetch.cancel()
            self._artwork_fetch = None
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None

    # ---- requests ------------------------------------------------------------------------------

    async def send_volume(self, volume: int) -> None:
        """SET_PARAMETER volume (A.8); `[STATUS] volume` once the receiver took it."""
        streamer = self.streamer
        body = f"volume: {volume_to_db(volume):.6f}\r\n".encode()
        answer = await streamer.set_parameter({"Content-Type": "text/parameters"}, body)
        if answer is None:
            return
        if answer == 200:
            self.volume = volume
            streamer.status.log(f"Setting volume to: {volume}")
            streamer.status.emit(Volume(volume))
        else:
            streamer.status.log(f"volume refused by receiver ({answer})", level=2)

    async def send_text_metadata(self) -> None:
        """DMAP title/artist/album (when the receiver lists md=0)."""
        streamer = self.streamer
        if not streamer.metadata_allowed(METADATA_TEXT):
            return
        body = track_metadata(title=self.title, artist=self.artist, album=self.album)
        streamer.status.log(f"Sending metadata: {self.title} / {self.artist} / {self.album}")
        headers = {
            "Content-Type": "application/x-dmap-tagged",
            "RTP-Info": f"rtptime={streamer.current_rtp()}",
        }
        if await streamer.set_parameter(headers, body) is None:
            return
        streamer.status.emit(Metadata(self.title or "", self.artist or ""))

    async def send_artwork_data(self, data: bytes) -> None:
        """Send loaded artwork (when the receiver lists md=1)."""
        streamer = self.streamer
        if not streamer.metadata_allowed(METADATA_ARTWORK):
            return
        content_type = artwork_content_type(data)
        if content_type is None:
            streamer.status.log("artwork is neither JPEG nor PNG; not sent", level=2)
            return
        streamer.status.log("Sending artwork to player...")
        headers = {"Content-Type": content_type, "RTP-Info": f"rtptime={streamer.current_rtp()}"}
        if await streamer.set_parameter(headers, data) is None:
            return
        streamer.status.emit(Artwork(len(data)))

    async def send_progress(self, position_s: int) -> None:
        """`progress: start/current/end` in RTP time (when the receiver lists md=2)."""
        streamer = self.streamer
        if not streamer.metadata_allowed(METADATA_PROGRESS):
            return
        current = streamer.current_rtp()
        start = rtp_add(current, -position_s * self.rate)
        end = rtp_add(start, (self.duration_s or 0) * self.rate)
        await streamer.set_parameter(
            {"Content-Type": "text/parameters"},
            f"progress: {start}/{current}/{end}\r\n".encode(),
        )

    async def flush(self) -> None:
        """Drop buffered input and restart on the same session with the next input (FLUSH)."""
        streamer = self.streamer
        was_paused = streamer.paused
        if not was_paused:
            await streamer.pause()
        dropped = streamer.discard_input()
        streamer.status.log(f"flushed {dropped} buffered samples")
        streamer.status.emit(Flushed(dropped))
        with contextlib.suppress(Exception):
            streamer.resume(None)


async def _in_daemon_thread(func: Callable[[str], bytes], arg: str) -> bytes:
    """Run a blocking call in a daemon thread: unlike `asyncio.to_thread`, the streamer's exit
    never waits for it (`asyncio.run` joins the default executor; an unreachable artwork host
    held a STOP for the whole urlopen timeout)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bytes] = loop.create_future()

    def deliver(result: bytes | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or b"")

    def work() -> None:
        try:
            result, error = func(arg), None
        except Exception as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(deliver, result, error)

    threading.Thread(target=work, name="artwork", daemon=True).start()
    return await future


def _int_or_none(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        try:
            return int(float(text.strip()))
        except ValueError:
            return None
