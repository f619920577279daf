"""The streamer contract: `[STATUS]` events, error codes, and their one line format.

Pure, no I/O. The streamers (`bin/cliraop`, `bin/cliap2`) write one line per event on stderr;
the provider (and Music Assistant, which reads the same text) parses them back:

    [STATUS] <event> key=value key=value ...

Values containing spaces, quotes or '=' (or empty) are JSON strings, so they parse back
unambiguously; booleans are `true`/`false`. Optional fields left as None are not written. The
wire text is fixed (ARCHITECTURE.md §3): `tests/unit/test_streamer_status.py` pins it byte by byte.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from airplay_provider.protocol.errors import AirplayError

_BARE_VALUE = re.compile(r"[A-Za-z0-9_.:/+\-]*")  # fullmatch: "$" would accept a final "\n"
_STATUS_LINE = re.compile(r"^\[STATUS\] (?P<event>[a-z_]+)(?P<rest>.*)$")
_PAIR = re.compile(r'\s+(?P<key>[a-z_][a-z0-9_]*)=(?P<value>"(?:[^"\\]|\\.)*"|\S*)')


CODEC_ALAC = "alac"  # `started codec=`: compressed ALAC frames (escape frames where not smaller)
CODEC_PCM_ESCAPE = "pcm-escape"  # uncompressed ALAC escape frames


class ErrorCode(StrEnum):
    """Every machine code a streamer or the provider gives a failure (`[STATUS] error code=`)."""

    # command line and input
    USAGE = "usage"
    OS_ERROR = "os_error"
    EMPTY_INPUT = "empty_input"
    # reaching the receiver (RTSP connection)
    TIMEOUT = "timeout"
    REFUSED = "refused"
    UNKNOWN_HOST = "unknown_host"
    CONNECT_FAILED = "connect_failed"
    CONNECTION_LOST = "connection_lost"
    RECEIVER_GONE = "receiver_gone"  # closed its RTSP connection or its audio port mid-stream
    BAD_RESPONSE = "bad_response"
    # the receiver's answers
    FORBIDDEN = "forbidden"
    BUSY = "busy"
    PAIRING_REQUIRED = "pairing_required"
    REJECTED = "rejected"
    PASSWORD_REQUIRED = "password_required"  # noqa: S105 - a code, not a password
    AUTH_FAILED = "auth_failed"
    # AirPlay 2 set-up and session
    PIN_REQUIRED = "pin_required"
    PAIRING_FAILED = "pairing_failed"
    EVENT_CHANNEL = "event_channel"
    PTP_UNAVAILABLE = "ptp_unavailable"
    NTP_REFUSED = "ntp_refused"
    FEEDBACK = "feedback"
    CLOCK_NOT_READY = "clock_not_ready"  # buffered: the anchor kept being refused (400)
    FORMAT_UNSUPPORTED = "format_unsupported"  # --bits/--rate not possible on this stream type
    # the provider's view of a streamer process
    SPAWN_FAILED = "spawn_failed"
    NOT_STARTED = "not_started"
    CONNECT_TIMEOUT = "connect_timeout"
    EXITED = "exited"
    NO_HOLD = "no_hold"
    NO_FFMPEG = "no_ffmpeg"


class StreamerError(AirplayError):
    """A streamer failed: could not set up, stream, start, or exited (one class for both sides).

    `code` is the `ErrorCode` (or, from a newer streamer, the code's text)."""

    def __init__(self, code: ErrorCode | str, message: str) -> None:
        super().__init__(message)
        self.code = code


def code_of(text: str) -> ErrorCode | str:
    """The `ErrorCode` named by `text`; the text itself for a code this version does not know."""
    try:
        return ErrorCode(text)
    except ValueError:
        return text


# ---- events -----------------------------------------------------------------------------------


class _Event:
    """Value semantics (==, hash, repr) for every event, written once: generating them for each
    class (`dataclass(eq=True, repr=True)`) made this module's import ~40 % slower, and every
    streamer process imports it at start."""

    __slots__ = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, spec.name) for spec in dataclasses.fields(self))  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Event)
            and type(other) is type(self)
            and (self._values() == other._values())
        )

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        names = [spec.name for spec in dataclasses.fields(self)]  # type: ignore[arg-type]
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({inner})"


@dataclass(frozen=True, eq=False, repr=False)
class Connected(_Event):
    """RTSP set-up done (RAOP: `encrypted`, `audio_latency`; AirPlay 2: `timing`, `pairing`)."""

    EVENT: ClassVar[str] = "connected"
    host: str
    port: int
    latency_ms: int
    encrypted: bool | None = None
    audio_latency: str | None = None
    timing: str | None = None
    pairing: str | None = None


@dataclass(frozen=True, eq=False, repr=False)
class StartFields(_Event):
    """Where a start or resume landed: sample `first_sample` plays at `actual_ntp`; AirPlay 2
    names the `stream_type` in use (`realtime` or `buffered`). `codec` (`alac`: compressed ALAC,
    `pcm-escape`: uncompressed escape frames), `bits` and `rate` say what the stream carries
    (absent from older streamers: read as unknown)."""

    EVENT: ClassVar[str] = ""
    requested_ntp: int
    actual_ntp: int
    first_sample: int
    seq: int
    rtptime: int
    skipped_frames: int
    stream_type: str | None = None
    codec: str | None = None
    bits: int | None = None
    rate: int | None = None


@dataclass(frozen=True, eq=False, repr=False)
class Started(StartFields):
    """The first real audio packet of the stream left (sent once)."""

    EVENT: ClassVar[str] = "started"


@dataclass(frozen=True, eq=False, repr=False)
class Playing(StartFields):
    """Audio is (again) on its way: after `started`, and after every resume."""

    EVENT: ClassVar[str] = "playing"


@dataclass(frozen=True, eq=False, repr=False)
class Paused(_Event):
    """The receiver has flushed; `sample` is the first unplayed input sample."""

    EVENT: ClassVar[str] = "paused"
    sample: int


@dataclass(frozen=True, eq=False, repr=False)
class Elapsed(_Event):
    """Play position in milliseconds (once a second)."""

    EVENT: ClassVar[str] = "elapsed"
    ms: int


@dataclass(frozen=True, eq=False, repr=False)
class Volume(_Event):
    """The receiver took a volume (0..100)."""

    EVENT: ClassVar[str] = "volume"
    value: int


@dataclass(frozen=True, eq=False, repr=False)
class Stats(_Event):
    """Packet counters; the last report also carries the pacer's wake-up jitter."""

    EVENT: ClassVar[str] = "stats"
    sent: int
    resent: int
    late: int
    underruns: int
    lost: int
    send_errors: int
    jitter_p50_us: int | None = None
    jitter_p99_us: int | None = None
    jitter_max_us: int | None = None
    wakeups: int | None = None
    copies: int | None = None  # packets sent twice: too little lead for a resend (pacer.py)
    #: ALAC frames sent compressed (-alac) and ALAC payload bytes sent (resends not counted).
    compressed: int | None = None
    payload_bytes: int | None = None


@dataclass(frozen=True, eq=False, repr=False)
class Eof(_Event):
    """End of input: `samples` input samples were sent; the tail now drains."""

    EVENT: ClassVar[str] = "eof"
    samples: int


@dataclass(frozen=True, eq=False, repr=False)
class Stopped(_Event):
    """TEARDOWN done at input sample `sample`."""

    EVENT: ClassVar[str] = "stopped"
    sample: int


@dataclass(frozen=True, eq=False, repr=False)
class Error(_Event):
    """A failure; `code` is an `ErrorCode` (or the text of one a newer streamer sent)."""

    EVENT: ClassVar[str] = "error"
    code: ErrorCode | str
    message: str


@dataclass(frozen=True, eq=False, repr=False)
class Exit(_Event):
    """The streamer process ends with `code` (the provider adds one when it reaps it)."""

    EVENT: ClassVar[str] = "exit"
    code: int


@dataclass(frozen=True, eq=False, repr=False)
class Metadata(_Event):
    """Title and artist were sent to the receiver."""

    EVENT: ClassVar[str] = "metadata"
    title: str
    artist: str


@dataclass(frozen=True, eq=False, repr=False)
class Artwork(_Event):
    """Cover art of `size` bytes was sent (written as `bytes=`)."""

    EVENT: ClassVar[str] = "artwork"
    size: int = dataclasses.field(metadata={"wire": "bytes"})


@dataclass(frozen=True, eq=False, repr=False)
class Flushed(_Event):
    """ACTION=FLUSH dropped `samples` buffered input samples."""

    EVENT: ClassVar[str] = "flushed"
    samples: int


@dataclass(frozen=True, eq=False, repr=False)
class Paired(_Event):
    """AirPlay 2 pairing made new credentials; `stored` if written to --credentials_out."""

    EVENT: ClassVar[str] = "paired"
    stored: bool


@dataclass(frozen=True, eq=False, repr=False)
class PinRequired(_Event):
    """The receiver shows a PIN: send `PIN=<digits>` on the command pipe."""

    EVENT: ClassVar[str] = "pin_required"


@dataclass(frozen=True, eq=False, repr=False)
class Timing(_Event):
    """AirPlay 2 clock choice: NTP (with the `reason`) or PTP (with the grandmaster's data)."""

    EVENT: ClassVar[str] = "timing"
    protocol: str
    reason: str | None = None
    clock_id: str | None = None
    daemon_pid: int | None = None
    ptp_minus_mono_ns: int | None = None


@dataclass(frozen=True, eq=False, repr=False)
class ClockStatus(_Event):
    """The receiver's relation to our clock (`mode` ptp): `state` cold, probing, following,
    ready, stalled (with the likely `cause`) or unmeasured; `after_ms` since SETPEERS,
    `probes` Delay_Req heard so far, `ready_in_ms` the expected wait while locking. A receiver
    keeping its own clock that we follow instead: `locking`, then `tracking` with its clock's
    `offset_us` from our PTP timeline, `drift_ppb` and `error_us`, the offset's measured 99 %
    error bound (`probes`: exchanges in the servo)."""

    EVENT: ClassVar[str] = "clock"
    mode: str
    state: str
    peer: str | None = None
    after_ms: int | None = None
    probes: int | None = None
    ready_in_ms: int | None = None
    cause: str | None = None
    offset_us: int | None = None
    drift_ppb: int | None = None
    error_us: int | None = None


@dataclass(frozen=True, eq=False, repr=False)
class Waiting(_Event):
    """Set-up waits for the receiver (`reason=receiver_clock`: it has not measured our clock
    yet and refuses the buffered anchor; retried until `limit_s`)."""

    EVENT: ClassVar[str] = "waiting"
    reason: str
    limit_s: int


@dataclass(frozen=True, eq=False, repr=False)
class UnknownStatus(_Event):
    """A `[STATUS]` line this version cannot type (newer event, missing or malformed field)."""

    EVENT: ClassVar[str] = ""
    event: str
    fields: dict[str, str]


StatusEvent = (
    Connected
    | Started
    | Playing
    | Paused
    | Elapsed
    | Volume
    | Stats
    | Eof
    | Stopped
    | Error
    | Exit
    | Metadata
    | Artwork
    | Flushed
    | Paired
    | PinRequired
    | Timing
    | ClockStatus
    | Waiting
    | UnknownStatus
)

EVENT_TYPES: dict[str, type[StatusEvent]] = {
    kind.EVENT: kind
    for kind in (
        Connected,
        Started,
        Playing,
        Paused,
        Elapsed,
        Volume,
        Stats,
        Eof,
        Stopped,
        Error,
        Exit,
        Metadata,
        Artwork,
        Flushed,
        Paired,
        PinRequired,
        Timing,
        ClockStatus,
        Waiting,
    )
}


# ---- the line format ----------------------------------------------------------------------------


def format_status(event: StatusEvent) -> str:
    """The `[STATUS]` line (without newline) for `event`."""
    if isinstance(event, UnknownStatus):
        return _format_line(event.event, dict(event.fields))
    fields: dict[str, object] = {}
    for spec in dataclasses.fields(event):
        value = getattr(event, spec.name)
        if value is not None:
            fields[spec.metadata.get("wire", spec.name)] = value
    return _format_line(event.EVENT, fields)


def parse_status(line: str) -> StatusEvent | None:
    """The event of a `[STATUS]` line; None for any other line (a human log line)."""
    raw = parse_status_fields(line)
    if raw is None:
        return None
    name, fields = raw
    kind = EVENT_TYPES.get(name)
    if kind is None:
        return UnknownStatus(name, fields)
    try:
        return kind(**_typed_fields(kind, fields))
    except (KeyError, ValueError, TypeError):
        return UnknownStatus(name, fields)


def parse_status_fields(line: str) -> tuple[str, dict[str, str]] | None:
    """Untyped view of a `[STATUS]` line: (event name, text fields); None for other lines."""
    match = _STATUS_LINE.match(line.rstrip("\r\n"))
    if match is None:
        return None
    fields: dict[str, str] = {}
    for pair in _PAIR.finditer(match.group("rest")):
        value = pair.group("value")
        if value.startswith('"'):
            try:
                value = str(json.loads(value))
            except ValueError:
                return None
        fields[pair.group("key")] = value
    return match.group("event"), fields


def _format_line(event: str, fields: dict[str, object]) -> str:
    parts = [f"[STATUS] {event}"]
    for key, value in fields.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if not _BARE_VALUE.fullmatch(text) or text == "":
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def _typed_fields(kind: type[StatusEvent], fields: dict[str, str]) -> dict[str, Any]:
    """Constructor arguments for `kind` from text fields (KeyError/ValueError when malformed)."""
    hints = _hints(kind)
    out: dict[str, Any] = {}
    for spec in dataclasses.fields(kind):
        wire = spec.metadata.get("wire", spec.name)
        if wire not in fields:
            if spec.default is dataclasses.MISSING:
                raise KeyError(wire)
            continue
        out[spec.name] = _convert(hints[spec.name], fields[wire])
    return out


def _convert(hint: object, text: str) -> object:
    args = set(typing.get_args(hint)) - {type(None)}
    if hint is int or args == {int}:
        return int(text)
    if hint is bool or args == {bool}:
        if text not in ("true", "false"):
            raise ValueError(f"not a boolean: {text!r}")
        return text == "true"
    if args == {ErrorCode, str}:
        return code_of(text)
    return text


_HINTS: dict[type, dict[str, object]] = {}


def _hints(kind: type) -> dict[str, object]:
    hints = _HINTS.get(kind)
    if hints is None:
        hints = _HINTS[kind] = typing.get_type_hints(kind)
    return hints
