"""AirPlay video ("play a URL on the device"), sans-I/O: requests, `/playback-info`, progress.

The device fetches and plays the media itself. The sender sends ``POST /play`` with the media's
location and start position, then polls ``GET /playback-info`` (a plist: ``duration``,
``position``, ``rate``, ``readyToPlay``, and an ``error`` dictionary when the device failed),
and controls playback with ``POST /rate?value=R``, ``POST /scrub?position=S`` and
``POST /stop``. `PlaybackTracker` turns the polled snapshots into one playback state.
"""

from __future__ import annotations

import math
import plistlib
from dataclasses import dataclass
from enum import Enum
from typing import Final
from urllib.parse import urlsplit

from airplay_provider.protocol.errors import AirplayError

#: Features bit 0: the device plays video (and any media) from a URL.
VIDEO_FEATURE_BIT: Final = 0
USER_AGENT: Final = "MediaControl/1.0"
BINARY_PLIST: Final = "application/x-apple-binary-plist"
#: NSURLErrorDomain codes of TLS trust failures (-1200 secure connection failed ... -1206).
CERTIFICATE_ERROR_CODES: Final = frozenset(range(-1206, -1199))
#: Seconds the device may take to load the media before `PlaybackTracker` gives up.
LOAD_TIMEOUT_S: Final = 20.0


class UrlPlaybackError(AirplayError):
    """Playing a URL on the device failed; the message says why, for the user."""


class NeedsPairingError(UrlPlaybackError):
    """The device demands pair-verify and no (valid) credentials are stored."""


class UrlPlaybackUnsupported(UrlPlaybackError):
    """The device cannot play a URL (a RAOP / audio-only speaker: no video feature bit)."""


class CertificateRejected(UrlPlaybackError):
    """The device would not trust the https URL's certificate."""


class DevicePlaybackError(UrlPlaybackError):
    """The device reported a playback error (or answered the protocol wrongly)."""


def supports_url_playback(features: int) -> bool:
    """Whether the features value has the video bit (0)."""
    return bool(features >> VIDEO_FEATURE_BIT & 1)


def check_url(url: str) -> str:
    """`url` if it is an absolute http(s) URL with a host; `UrlPlaybackError` otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlPlaybackError(f"not an http(s) URL: {url!r}")
    return url


def play_body(url: str, start_position: float, session_id: str) -> bytes:
    """The binary-plist body of ``POST /play``; `start_position` is a fraction 0..1."""
    if not 0.0 <= start_position <= 1.0 or math.isnan(start_position):
        raise UrlPlaybackError(f"start position must be between 0 and 1, got {start_position}")
    body = {
        "Content-Location": check_url(url),
        "Start-Position": float(start_position),
        "X-Apple-Session-ID": session_id,
    }
    return plistlib.dumps(body, fmt=plistlib.FMT_BINARY)


def rate_path(rate: float) -> str:
    """``/rate?value=R`` (0 pauses, 1 plays)."""
    return f"/rate?value={_number(rate)}"


def scrub_path(position_s: float) -> str:
    """``/scrub?position=S`` (seconds from the start)."""
    if position_s < 0 or not math.isfinite(position_s):
        raise UrlPlaybackError(f"cannot seek to {position_s} s")
    return f"/scrub?position={_number(position_s)}"


def _number(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class DeviceError:
    """The ``error`` dictionary of `/playback-info`."""

    code: int
    domain: str
    description: str

    @property
    def certificate(self) -> bool:
        """A TLS trust failure (an https URL whose certificate the device refused)."""
        return self.code in CERTIFICATE_ERROR_CODES


@dataclass(frozen=True)
class PlaybackInfo:
    """One `/playback-info` snapshot; `duration` is None while nothing is loaded."""

    duration: float | None = None
    position: float = 0.0
    rate: float = 0.0
    ready_to_play: bool = False
    error: DeviceError | None = None


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def parse_playback_info(body: bytes) -> PlaybackInfo:
    """Parse a `/playback-info` body (binary or XML plist; empty = nothing playing)."""
    if not body.strip():
        return PlaybackInfo()
    try:
        data = plistlib.loads(body)
    except Exception as exc:  # plistlib raises several types for garbage
        raise DevicePlaybackError(f"unreadable /playback-info answer: {exc}") from None
    if not isinstance(data, dict):
        raise DevicePlaybackError("/playback-info answer is not a dictionary")
    error = None
    raw_error = data.get("error")
    if isinstance(raw_error, dict):
        code = raw_error.get("code")
        error = DeviceError(
            code=code if isinstance(code, int) else 0,
            domain=str(raw_error.get("domain", "")),
            description=str(raw_error.get("localizedDescription", "") or "playback failed"),
        )
    elif raw_error is not None:
        error = DeviceError(0, "", str(raw_error))
    duration = _float(data.get("duration"))
    return PlaybackInfo(
        duration=duration if duration is not None and duration > 0 else None,
        position=max(0.0, _float(data.get("position")) or 0.0),
        rate=_float(data.get("rate")) or 0.0,
        ready_to_play=data.get("readyToPlay") is True,
        error=error,
    )


class PlaybackState(Enum):
    """What the device is doing with the URL."""

    LOADING = "loading"
    PLAYING = "playing"
    PAUSED = "paused"
    ENDED = "ended"
    FAILED = "failed"


@dataclass(frozen=True)
class Progress:
    """State plus position and duration (seconds; duration None until known)."""

    state: PlaybackState
    position: float = 0.0
    duration: float | None = None


def describe_error(error: DeviceError, url: str) -> UrlPlaybackError:
    """The exception for a device-reported `error` while playing `url`."""
    detail = f"{error.description} ({error.domain or 'error'} {error.code})"
    if error.certificate and urlsplit(url).scheme == "https":
        return CertificateRejected(f"the device does not accept the certificate of {url}: {detail}")
    return DevicePlaybackError(f"the device reported a playback error: {detail}")


class PlaybackTracker:
    """Feeds on `/playback-info` snapshots; says when playback started, ended or failed.

    Before the media loads, a snapshot without duration means "still loading" (for at most
    `load_timeout` s); once it played, a snapshot without duration means it ended (the device
    dropped the item), as does a stop at the very end.
    """

    def __init__(self, url: str, started_at: float, *, load_timeout: float = LOAD_TIMEOUT_S):
        self.url = url
        self.started_at = started_at
        self.load_timeout = load_timeout
        self.loaded = False
        self.progress = Progress(PlaybackState.LOADING)
        self.failure: UrlPlaybackError | None = None

    @property
    def finished(self) -> bool:
        """Ended or failed: nothing more to poll."""
        return self.progress.state in (PlaybackState.ENDED, PlaybackState.FAILED)

    def update(self, info: PlaybackInfo, now: float) -> Progress:
        """Take one snapshot taken at `now` (same clock as `started_at`)."""
        if self.finished:
            return self.progress
        if info.error is not None:
            self.failure = describe_error(info.error, self.url)
            return self._set(PlaybackState.FAILED, info)
        if info.duration is None:
            if self.loaded:
                last = self.progress
                return self._set(PlaybackState.ENDED, info, last.duration or last.position)
            if now - self.started_at > self.load_timeout:
                self.failure = DevicePlaybackError(
                    f"the device did not start playing within {self.load_timeout:g} s"
                )
                return self._set(PlaybackState.FAILED, info)
            return self._set(PlaybackState.LOADING, info)
        self.loaded = True
        at_end = info.position >= info.duration - 0.05
        if info.rate == 0 and at_end:
            return self._set(PlaybackState.ENDED, info, info.duration)
        if not info.ready_to_play and info.rate == 0:
            return self._set(PlaybackState.LOADING, info)
        state = PlaybackState.PLAYING if info.rate != 0 else PlaybackState.PAUSED
        return self._set(state, info)

    def _set(
        self, state: PlaybackState, info: PlaybackInfo, position: float | None = None
    ) -> Progress:
        duration = info.duration if info.duration is not None else self.progress.duration
        self.progress = Progress(state, info.position if position is None else position, duration)
        return self.progress


def clock(seconds: float) -> str:
    """``m:ss.s``."""
    minutes, secs = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{secs:04.1f}"


def progress_line(progress: Progress) -> str:
    """``0:12.0 / 1:30.0  playing``."""
    total = f" / {clock(progress.duration)}" if progress.duration else ""
    return f"{clock(progress.position)}{total}  {progress.state.value}"
