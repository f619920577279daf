"""AirPlay video endpoints for the AirPlay 2 emulator: the device fetches and "plays" a URL.

``POST /play`` (binary plist or text/parameters: ``Content-Location``, ``Start-Position``)
starts a fetcher that really downloads the URL over HTTP with range requests, paced at real
time (`byte_rate` bytes are one second of media), so the position ``GET /playback-info``
reports is what was fetched: ``offset / byte_rate``. ``POST /rate?value=``, ``POST /scrub?
position=`` and ``POST /stop`` act on it. An unreachable URL, an HTTP error, a server that
ignores ``Range`` and an https certificate it does not trust become an ``error`` dictionary in
``/playback-info`` (NSURLErrorDomain codes, as an Apple TV reports them) and an entry in the
device's error log. With ``require_pairing``, a video request on a connection that did not
pair-verify is refused with 470 and recorded. It fetches from loopback addresses only.

Plug it in with ``async with Ap2Video(emulator.device) as video:`` (it sets the device's
``video_handler``; `ap2_emulator_core` routes the video paths to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import plistlib
import re
import time
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

import aiohttp

from tests.receivers.ap2_emulator_core import (
    FEATURES,
    AccessoryConnection,
    AccessoryDevice,
    EmuRequest,
    EmuResponse,
)

#: The emulator's default features plus bit 0 (video: plays a URL itself).
VIDEO_FEATURES = FEATURES | 1
VIDEO_PATHS = frozenset({"/play", "/playback-info", "/rate", "/scrub", "/stop"})
CANNOT_CONNECT = -1004
BAD_SERVER_RESPONSE = -1011
FILE_NOT_FOUND = -1100
CERTIFICATE_UNTRUSTED = -1202
CHUNK_S = 0.1
FETCH_TIMEOUT_S = 5.0
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


@dataclass
class VideoItem:
    """One ``/play``: what was asked, fetched, and done to it."""

    url: str
    start_position: float
    session_id: str
    total: int | None = None
    offset: int = 0
    data: bytearray = field(default_factory=bytearray)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    rate: float = 1.0
    rates: list[float] = field(default_factory=list)
    scrubs: list[float] = field(default_factory=list)
    error: tuple[int, str] | None = None
    ended: bool = False
    stopped: bool = False
    task: asyncio.Task[None] | None = None
    first_byte_at: float | None = None
    """`time.monotonic()` when the first media bytes arrived."""
    playing: asyncio.Event = field(default_factory=asyncio.Event)


def _error_reply(status: int, reason: str) -> EmuResponse:
    return EmuResponse(status, reason)


class Ap2Video:
    """The video side of one emulated device (an Apple TV-like receiver)."""

    def __init__(
        self, device: AccessoryDevice, *, byte_rate: int = 100_000, require_pairing: bool = False
    ) -> None:
        self.device = device
        self.byte_rate = byte_rate
        self.require_pairing = require_pairing
        self.items: list[VideoItem] = []
        self.requests: list[tuple[str, str, bool]] = []
        """(method, path with query, encrypted) of every video request."""
        self.info_polls = 0

    @property
    def current(self) -> VideoItem | None:
        """The item loaded now (None when idle or after ``/stop``)."""
        item = self.items[-1] if self.items else None
        return item if item is not None and not item.stopped else None

    async def __aenter__(self) -> Ap2Video:
        self.device.video_handler = self.handle
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.device.video_handler = None
        for item in self.items:
            await self._cancel(item)

    def _record(self, message: str) -> None:
        self.device.errors.record(message)

    # --- requests ---------------------------------------------------------------------------

    def handle(self, connection: AccessoryConnection, request: EmuRequest) -> EmuResponse | None:
        """Answer a video request; None for any other path."""
        path, _, query = request.path.partition("?")
        if path not in VIDEO_PATHS:
            return None
        self.requests.append((request.method, request.path, connection.encrypted))
        if self.require_pairing and not connection.encrypted:
            self._record(f"{request.method} {path} without pair-verify")
            return _error_reply(470, "Connection Authorization Required")
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        key = (request.method, path)
        if key == ("POST", "/play"):
            return self._play(request)
        if key == ("GET", "/playback-info"):
            return self._playback_info()
        if key == ("POST", "/rate"):
            return self._rate(params)
        if key in (("POST", "/scrub"), ("GET", "/scrub")):
            return self._scrub(request.method, params)
        if key == ("POST", "/stop"):
            item = self.current
            if item is not None:
                item.stopped = True
                if item.task is not None:
                    item.task.cancel()
            return EmuResponse(200)
        self._record(f"{request.method} {path}: method not allowed")
        return _error_reply(405, "Method Not Allowed")

    def _play(self, request: EmuRequest) -> EmuResponse:
        content_type = request.headers.get("content-type", "")
        body: dict[str, object] = {}
        try:
            if content_type == "application/x-apple-binary-plist":
                loaded = plistlib.loads(request.body, fmt=plistlib.FMT_BINARY)
                body = loaded if isinstance(loaded, dict) else {}
            elif content_type == "text/parameters":
                for line in request.body.decode().splitlines():
                    name, _, value = line.partition(":")
                    body[name.strip()] = value.strip()
            else:
                self._record(f"POST /play: unexpected Content-Type {content_type!r}")
                return _error_reply(415, "Unsupported Media Type")
        except (plistlib.InvalidFileException, ValueError, UnicodeDecodeError) as exc:
            self._record(f"POST /play: unreadable body ({exc})")
            return _error_reply(400, "Bad Request")
        url = body.get("Content-Location")
        raw_start = body.get("Start-Position", 0.0)
        try:
            start = float(raw_start) if isinstance(raw_start, int | float | str) else -1.0
        except ValueError:
            start = -1.0
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            self._record(f"POST /play: bad Content-Location {url!r}")
            return _error_reply(400, "Bad Request")
        if not 0.0 <= start <= 1.0:
            self._record(f"POST /play: Start-Position {body.get('Start-Position')!r} not in 0..1")
            return _error_reply(400, "Bad Request")
        previous = self.current
        if previous is not None:
            previous.stopped = True
            if previous.task is not None:
                previous.task.cancel()
        session_id = str(
            body.get("X-Apple-Session-ID") or request.headers.get("x-apple-session-id")
        )
        item = VideoItem(url, start, str(session_id))
        item.playing.set()
        item.task = asyncio.get_running_loop().create_task(self._fetch(item))
        self.items.append(item)
        return EmuResponse(200)

    def _playback_info(self) -> EmuResponse:
        self.info_polls += 1
        item = self.current
        info: dict[str, object] = {}
        if item is not None and item.error is not None:
            code, message = item.error
            info = {
                "readyToPlay": False,
                "error": {
                    "code": code,
                    "domain": "NSURLErrorDomain",
                    "localizedDescription": message,
                },
            }
        elif item is not None and item.total is None:
            info = {"readyToPlay": False}
        elif item is not None and item.total is not None:
            duration = item.total / self.byte_rate
            info = {
                "duration": duration,
                "position": min(item.offset, item.total) / self.byte_rate,
                "rate": 0.0 if item.ended else item.rate,
                "readyToPlay": True,
                "playbackBufferEmpty": False,
                "playbackLikelyToKeepUp": True,
                "loadedTimeRanges": [{"start": 0.0, "duration": duration}],
            }
        body = plistlib.dumps(info, fmt=plistlib.FMT_XML)  # as an Apple TV: an XML plist
        return EmuResponse(200, body=body, content_type="text/x-apple-plist+xml")

    def _rate(self, params: dict[str, str]) -> EmuResponse:
        item = self.current
        try:
            rate = float(params["value"])
        except (KeyError, ValueError):
            self._record(f"POST /rate: bad value {params.get('value')!r}")
            return _error_reply(400, "Bad Request")
        if item is None:
            self._record("POST /rate with nothing loaded")
            return _error_reply(400, "Bad Request")
        item.rate = rate
        item.rates.append(rate)
        if rate == 0:
            item.playing.clear()
        else:
            item.playing.set()
        return EmuResponse(200)

    def _scrub(self, method: str, params: dict[str, str]) -> EmuResponse:
        item = self.current
        if item is None or item.total is None:
            self._record(f"{method} /scrub with nothing loaded")
            return _error_reply(400, "Bad Request")
        duration = item.total / self.byte_rate
        if method == "GET":
            position = item.offset / self.byte_rate
            text = f"duration: {duration:.6f}\nposition: {position:.6f}\n"
            return EmuResponse(200, body=text.encode(), content_type="text/parameters")
        try:
            position = float(params["position"])
        except (KeyError, ValueError):
            position = -1.0
        if not 0.0 <= position <= duration:
            self._record(f"POST /scrub: position {params.get('position')!r} outside 0..{duration}")
            return _error_reply(400, "Bad Request")
        item.scrubs.append(position)
        item.offset = min(int(position * self.byte_rate), item.total)
        if item.task is not None and item.task.done() and item.error is None:
            item.ended = False  # sought back after the end: fetch on from there
            item.task = asyncio.get_running_loop().create_task(self._fetch(item))
        return EmuResponse(200)

    # --- the fetcher ------------------------------------------------------------------------

    def _fail(self, item: VideoItem, code: int, message: str) -> None:
        item.error = (code, message)
        self._record(f"playback error {code}: {message}")

    async def _fetch(self, item: VideoItem) -> None:
        host = urlsplit(item.url).hostname or ""
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            self._fail(item, CANNOT_CONNECT, f"emulator fetches from loopback only, not {host!r}")
            return
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
        try:
            async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as http:
                await self._fetch_all(http, item)
        except aiohttp.ClientConnectorCertificateError as exc:
            self._fail(item, CERTIFICATE_UNTRUSTED, f"certificate not trusted: {exc}")
        except aiohttp.ClientSSLError as exc:
            self._fail(item, CERTIFICATE_UNTRUSTED - 2, f"secure connection failed: {exc}")
        except (aiohttp.ClientConnectorError, TimeoutError) as exc:
            self._fail(item, CANNOT_CONNECT, f"could not connect to the server: {exc!r}")
        except aiohttp.ClientError as exc:
            self._fail(item, BAD_SERVER_RESPONSE, f"bad server response: {exc!r}")

    async def _fetch_all(self, http: aiohttp.ClientSession, item: VideoItem) -> None:
        chunk = max(1, int(self.byte_rate * CHUNK_S))
        if item.start_position:
            item.total = await self._size(http, item)
            item.data = bytearray(item.total)
            item.offset = int(item.start_position * item.total)
        while item.total is None or item.offset < item.total:
            await item.playing.wait()
            start = item.offset
            async with http.get(
                item.url, headers={"Range": f"bytes={start}-{start + chunk - 1}"}
            ) as r:
                if r.status == 404:
                    self._fail(item, FILE_NOT_FOUND, f"{r.status} {r.reason}")
                    return
                match = _CONTENT_RANGE.fullmatch(r.headers.get("Content-Range", ""))
                if r.status != 206 or match is None or int(match[1]) != start:
                    self._fail(item, BAD_SERVER_RESPONSE, f"range request answered {r.status}")
                    return
                data = await r.read()
            first, last, total = int(match[1]), int(match[2]), int(match[3])
            if len(data) != last - first + 1:
                self._fail(item, BAD_SERVER_RESPONSE, "range body length differs")
                return
            if item.first_byte_at is None:
                item.first_byte_at = time.monotonic()
            if item.total is None:
                item.total = total
                item.data = bytearray(total)
            item.data[first : last + 1] = data
            item.ranges.append((first, last))
            if item.offset == start:  # (a scrub meanwhile wins)
                item.offset = last + 1
            await asyncio.sleep(CHUNK_S * len(data) / chunk / max(item.rate, 0.1))
        item.ended = True

    async def _size(self, http: aiohttp.ClientSession, item: VideoItem) -> int:
        async with http.get(item.url, headers={"Range": "bytes=0-0"}) as r:
            match = _CONTENT_RANGE.fullmatch(r.headers.get("Content-Range", ""))
            if r.status != 206 or match is None:
                raise aiohttp.ClientResponseError(
                    r.request_info, (), status=r.status, message="no Content-Range"
                )
            return int(match[3])

    async def _cancel(self, item: VideoItem) -> None:
        task = item.task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 2.0)
