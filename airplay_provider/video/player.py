"""Play a URL or a local file on an AirPlay device that plays media itself (an Apple TV).

`UrlPlayer` is the library object (start, poll, pause, resume, seek, stop, close); `play_url`
runs it to the end, reporting progress, and stops when asked. A local file is served to the
device by a `MediaServer` on the address the device reaches us on, closed with the player.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from airplay_provider.protocol.hap.credentials import HapCredentials
from airplay_provider.protocol.txt import DeviceRecord
from airplay_provider.protocol.video import (
    NeedsPairingError,
    PlaybackState,
    PlaybackTracker,
    Progress,
    UrlPlaybackError,
    UrlPlaybackUnsupported,
    check_url,
    supports_url_playback,
)
from airplay_provider.video.client import VideoClient
from airplay_provider.video.media_server import MediaServer

LOG = logging.getLogger(__name__)
POLL_INTERVAL_S = 0.5
STOP_TIMEOUT_S = 3.0


def check_device(device: DeviceRecord) -> tuple[list[str], int]:
    """The addresses and AirPlay port to reach `device` for URL playback, or why not."""
    if device.airplay is None or not supports_url_playback(device.features):
        kind = "an AirPlay 1 (RAOP) speaker" if device.airplay is None else "an audio-only device"
        raise UrlPlaybackUnsupported(
            f"{device.name} cannot play a URL itself ({kind}: no AirPlay video support); "
            f"use `airplay-provider play` to stream to it"
        )
    addresses = [a for a in (device.address, *device.fallback_addresses) if a]
    return list(dict.fromkeys(addresses)), device.airplay.port


def resolve_source(source: str) -> tuple[str | None, Path | None]:
    """(the URL, None) for an http(s) URL, (None, the path) for a file; else an error."""
    if urlsplit(source).scheme in ("http", "https"):
        return check_url(source), None
    path = Path(source)
    if not path.is_file():
        raise UrlPlaybackError(f"neither an http(s) URL nor a file: {source!r}")
    return None, path


@dataclass(frozen=True)
class PlayResult:
    """How it ended: played to the end, or stopped at `progress.position`."""

    ended: bool
    progress: Progress


class UrlPlayer:
    """``async with UrlPlayer(device, source, ...) as player:`` then `start` and `poll`."""

    def __init__(
        self,
        device: DeviceRecord,
        source: str,
        *,
        credentials: HapCredentials | None,
        pairing_id: str,
        start_position: float = 0.0,
    ) -> None:
        self.device = device
        self.source = source
        self.credentials = credentials
        self.pairing_id = pairing_id
        self.start_position = start_position
        self.session_id = str(uuid.uuid4()).upper()
        self.client: VideoClient | None = None
        self.server: MediaServer | None = None
        self.tracker: PlaybackTracker | None = None
        self.url = ""
        self.stopped = False
        self.accepted = False

    async def start(self) -> None:
        """Connect, pair-verify if credentials are stored, serve a file, ``POST /play``."""
        addresses, port = check_device(self.device)
        if self.credentials is None and self.device.pairing_required:
            raise NeedsPairingError(
                f"{self.device.name} requires pairing: run `airplay-provider pair "
                f"{self.device.name!r}` first"
            )
        url, path = resolve_source(self.source)
        self.client = await VideoClient.connect(
            addresses, port, self.device.name, session_id=self.session_id
        )
        if self.credentials is not None:
            await self.client.verify(self.credentials, self.pairing_id)
        if url is not None:
            self.url = url
        else:
            assert path is not None
            self.server = MediaServer(path, self.client.local_address)
            await self.server.start()
            self.url = self.server.url
        loop = asyncio.get_running_loop()
        self.tracker = PlaybackTracker(self.url, loop.time())
        LOG.info("asking %s to play %s", self.device.name, self.url)
        await self.client.play(self.url, self.start_position, self.session_id)
        self.accepted = True

    def _running(self) -> tuple[VideoClient, PlaybackTracker]:
        if self.client is None or self.tracker is None:
            raise UrlPlaybackError("not started")
        return self.client, self.tracker

    async def poll(self) -> Progress:
        """Ask the device where it is; raises the device's error once it failed."""
        client, tracker = self._running()
        info = await client.playback_info()
        progress = tracker.update(info, asyncio.get_running_loop().time())
        if tracker.failure is not None:
            raise tracker.failure
        return progress

    async def pause(self) -> None:
        """Pause (rate 0)."""
        await self._running()[0].set_rate(0.0)

    async def resume(self) -> None:
        """Play on (rate 1)."""
        await self._running()[0].set_rate(1.0)

    async def seek(self, position_s: float) -> None:
        """Jump to `position_s` seconds."""
        await self._running()[0].scrub(position_s)

    async def stop(self) -> None:
        """``POST /stop`` once, if the device took the URL (bounded; a device already gone is
        not an error here)."""
        if self.client is None or self.stopped or not self.accepted:
            return
        self.stopped = True
        with contextlib.suppress(UrlPlaybackError, TimeoutError):
            await asyncio.wait_for(self.client.stop(), STOP_TIMEOUT_S)

    async def close(self) -> None:
        """Close the connection and the file server."""
        client, self.client = self.client, None
        server, self.server = self.server, None
        if client is not None:
            await client.close()
        if server is not None:
            await server.close()

    async def __aenter__(self) -> UrlPlayer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            tracker = self.tracker
            if tracker is not None and tracker.progress.state is not PlaybackState.ENDED:
                await self.stop()  # stopped, failed or interrupted: leave the device idle
        finally:
            await self.close()


async def play_url(
    device: DeviceRecord,
    source: str,
    *,
    credentials: HapCredentials | None,
    pairing_id: str,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    poll_interval: float = POLL_INTERVAL_S,
) -> PlayResult:
    """Play `source` (http(s) URL or local file) on `device` until it ends or `stop` is set."""
    stop = stop or asyncio.Event()
    async with UrlPlayer(device, source, credentials=credentials, pairing_id=pairing_id) as player:
        await player.start()
        while True:
            progress = await player.poll()
            if on_progress is not None:
                on_progress(progress)
            if progress.state is PlaybackState.ENDED:
                return PlayResult(True, progress)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_interval)
            if stop.is_set():
                await player.stop()
                return PlayResult(False, progress)
