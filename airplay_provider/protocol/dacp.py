"""DACP remote control, sans-I/O: request parsing, reply bodies and the per-player policy.

A receiver reports remote buttons and hardware volume changes by sending
``GET /ctrl-int/1/<command>`` with an ``Active-Remote`` header to the sender's DACP server.
This module turns such a request target into a typed :class:`DacpCommand` and decides, with
:class:`DacpPolicy`, what the player should do about it. Time is always an argument.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from airplay_provider.protocol.dmap import dmap_item
from airplay_provider.protocol.errors import AirplayError
from airplay_provider.protocol.timing import db_to_volume

CTRL_PREFIX = "/ctrl-int/1/"
DEBOUNCE_PAUSE_S = 1.0
ECHO_WINDOW_S = 3.0
ECHO_TOLERANCE = 3
MAX_QUERY_FIELDS = 16
MAX_TARGET_LENGTH = 2048

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_NUMBER_RE = re.compile(r"[+-]?(?:\d{1,12}(?:\.\d{0,12})?|\.\d{1,12})")
_ACTIVE_REMOTE_RE = re.compile(r"\d{1,10}")


class DacpError(AirplayError):
    """Base class of DACP request errors."""


class DacpNotFoundError(DacpError):
    """The request target is not a DACP control path (answer 404)."""


class DacpParseError(DacpError):
    """A DACP control request is malformed (answer 400)."""


class CommandKind(enum.Enum):
    """What a receiver asked for."""

    PLAY = "play"
    PAUSE = "pause"
    PLAY_PAUSE = "playpause"
    PLAY_RESUME = "playresume"
    STOP = "stop"
    NEXT_ITEM = "nextitem"
    PREV_ITEM = "previtem"
    VOLUME_UP = "volumeup"
    VOLUME_DOWN = "volumedown"
    SHUFFLE_SONGS = "shuffle_songs"
    DISCRETE_PAUSE = "discrete-pause"
    DEVICE_VOLUME = "dmcp.device-volume"
    VOLUME = "dmcp.volume"
    PREVENT_PLAYBACK = "dmcp.device-prevent-playback"
    DEVICE_BUSY = "dmcp.device-busy"
    GET_VOLUME = "getproperty:dmcp.volume"
    UNSUPPORTED = "unsupported"


_SIMPLE_COMMANDS: dict[str, CommandKind] = {
    kind.value: kind
    for kind in (
        CommandKind.PLAY,
        CommandKind.PAUSE,
        CommandKind.PLAY_PAUSE,
        CommandKind.PLAY_RESUME,
        CommandKind.STOP,
        CommandKind.NEXT_ITEM,
        CommandKind.PREV_ITEM,
        CommandKind.VOLUME_UP,
        CommandKind.VOLUME_DOWN,
        CommandKind.SHUFFLE_SONGS,
        CommandKind.DISCRETE_PAUSE,
    )
}


@dataclass(frozen=True, slots=True)
class DacpCommand:
    """A parsed DACP request.

    ``value`` is the dB level for DEVICE_VOLUME (-144..0), 0..100 for VOLUME and 0 or 1 for
    PREVENT_PLAYBACK / DEVICE_BUSY; None otherwise. ``name`` is the raw command name.
    """

    kind: CommandKind
    value: float | None = None
    name: str = ""


def parse_active_remote(header: str | None) -> str | None:
    """Canonical Active-Remote token (decimal 32-bit), or None if missing or not a token."""
    if header is None:
        return None
    token = header.strip()
    if not _ACTIVE_REMOTE_RE.fullmatch(token):
        return None
    number = int(token)
    if number > 0xFFFFFFFF:
        return None
    return str(number)


def _parse_number(raw: str, what: str) -> float:
    text = raw.strip()
    if not _NUMBER_RE.fullmatch(text):
        raise DacpParseError(f"{what}: not a number: {raw[:40]!r}")
    value = float(text)
    if not math.isfinite(value):  # pragma: no cover - the pattern admits finite values only
        raise DacpParseError(f"{what}: not finite")
    return value


def _parse_flag(raw: str, what: str) -> float:
    text = raw.strip()
    if text not in ("0", "1"):
        raise DacpParseError(f"{what}: expected 0 or 1, got {raw[:40]!r}")
    return float(text)


def _parse_setproperty(pairs: list[tuple[str, str]]) -> DacpCommand:
    if not pairs:
        raise DacpParseError("setproperty without a property")
    for key, raw in pairs:
        if key == CommandKind.DEVICE_VOLUME.value:
            db = _parse_number(raw, key)
            if not -200.0 <= db <= 50.0:
                raise DacpParseError(f"{key}: {db} dB out of range")
            return DacpCommand(CommandKind.DEVICE_VOLUME, db, "setproperty")
        if key == CommandKind.VOLUME.value:
            volume = _parse_number(raw, key)
            if not 0.0 <= volume <= 100.0:
                raise DacpParseError(f"{key}: {volume} out of 0..100")
            return DacpCommand(CommandKind.VOLUME, volume, "setproperty")
        if key == CommandKind.PREVENT_PLAYBACK.value:
            return DacpCommand(CommandKind.PREVENT_PLAYBACK, _parse_flag(raw, key), "setproperty")
        if key == CommandKind.DEVICE_BUSY.value:
            return DacpCommand(CommandKind.DEVICE_BUSY, _parse_flag(raw, key), "setproperty")
    return DacpCommand(CommandKind.UNSUPPORTED, None, "setproperty")


def _parse_getproperty(pairs: list[tuple[str, str]]) -> DacpCommand:
    properties = [value for key, value in pairs if key == "properties"]
    if not properties:
        raise DacpParseError("getproperty without properties=")
    wanted = {item.strip() for value in properties for item in value.split(",")}
    if CommandKind.VOLUME.value in wanted:
        return DacpCommand(CommandKind.GET_VOLUME, None, "getproperty")
    return DacpCommand(CommandKind.UNSUPPORTED, None, "getproperty")


def parse_request_target(target: str) -> DacpCommand:
    """Parse a request target such as ``/ctrl-int/1/setproperty?dmcp.volume=50``.

    Raises DacpNotFoundError for paths outside ``/ctrl-int/1/`` and DacpParseError for
    malformed control requests. Unknown command names give ``CommandKind.UNSUPPORTED``.
    """
    if len(target) > MAX_TARGET_LENGTH:
        raise DacpParseError("request target too long")
    try:
        parts = urlsplit(target)
        path = unquote(parts.path, errors="strict")
        pairs = parse_qsl(
            parts.query,
            keep_blank_values=True,
            errors="strict",
            max_num_fields=MAX_QUERY_FIELDS,
        )
    except (ValueError, UnicodeError) as err:
        raise DacpParseError(f"bad request target: {err}") from err
    if not path.startswith(CTRL_PREFIX):
        raise DacpNotFoundError(f"not a DACP control path: {path[:80]!r}")
    name = path[len(CTRL_PREFIX) :]
    if not _NAME_RE.fullmatch(name):
        raise DacpParseError(f"bad command name: {name[:80]!r}")
    name = name.lower()
    if name == "setproperty":
        return _parse_setproperty(pairs)
    if name == "getproperty":
        return _parse_getproperty(pairs)
    kind = _SIMPLE_COMMANDS.get(name, CommandKind.UNSUPPORTED)
    return DacpCommand(kind, None, name)


def encode_volume_property(volume: int) -> bytes:
    """DMAP body for ``getproperty?properties=dmcp.volume``: cmgt{mstt=200, cmvo=volume}."""
    if not 0 <= volume <= 100:
        raise ValueError(f"volume {volume} out of 0..100")
    status = dmap_item("mstt", 200, int_size=4)
    return dmap_item("cmgt", status + dmap_item("cmvo", volume, int_size=4))


class ActionKind(enum.Enum):
    """What the host should do with a player."""

    NONE = "none"
    PLAY = "play"
    PAUSE = "pause"
    PLAY_PAUSE = "play_pause"
    STOP = "stop"
    NEXT = "next"
    PREVIOUS = "previous"
    VOLUME_UP = "volume_up"
    VOLUME_DOWN = "volume_down"
    TOGGLE_SHUFFLE = "toggle_shuffle"
    SET_VOLUME = "set_volume"
    """The user changed the volume on the device: adopt it and apply it (re-send)."""
    UPDATE_VOLUME_STATE = "update_volume_state"
    """Echo of our own volume command: record the value, send nothing."""
    LEAVE_GROUP = "leave_group"
    STOP_SESSION = "stop_session"


@dataclass(frozen=True, slots=True)
class DacpAction:
    """A decision of the policy; ``volume`` (0..100) is set for the two volume kinds."""

    kind: ActionKind
    volume: int | None = None


NO_ACTION = DacpAction(ActionKind.NONE)

_DIRECT_ACTIONS: dict[CommandKind, ActionKind] = {
    CommandKind.PLAY_PAUSE: ActionKind.PLAY_PAUSE,
    CommandKind.STOP: ActionKind.STOP,
    CommandKind.NEXT_ITEM: ActionKind.NEXT,
    CommandKind.PREV_ITEM: ActionKind.PREVIOUS,
    CommandKind.VOLUME_UP: ActionKind.VOLUME_UP,
    CommandKind.VOLUME_DOWN: ActionKind.VOLUME_DOWN,
    CommandKind.SHUFFLE_SONGS: ActionKind.TOGGLE_SHUFFLE,
}


@dataclass(frozen=True, slots=True)
class DacpPlayerState:
    """What the policy needs to know about a player when a command arrives."""

    player_id: str
    playing: bool
    has_stream: bool = True
    transitioning: bool = False
    grouped: bool = False
    volume: int | None = None
    ignore_device_volume: bool = False


class DacpPolicy:
    """Per-player DACP decisions: echo filters, debounced pause, prevent-playback.

    Feed it commands with :meth:`on_command`, our own volume sends with
    :meth:`on_volume_sent`, and the clock with :meth:`poll` once :attr:`pause_deadline`
    has passed. Call :meth:`reset` when a new stream starts for the player.
    """

    def __init__(
        self,
        *,
        debounce_s: float = DEBOUNCE_PAUSE_S,
        echo_window_s: float = ECHO_WINDOW_S,
        echo_tolerance: int = ECHO_TOLERANCE,
    ) -> None:
        self._debounce_s = debounce_s
        self._echo_window_s = echo_window_s
        self._echo_tolerance = echo_tolerance
        self._sent_volume: int | None = None
        self._sent_at: float | None = None
        self._pause_deadline: float | None = None
        self._prevent_playback = False

    @property
    def pause_deadline(self) -> float | None:
        """When a debounced discrete-pause becomes due, or None."""
        return self._pause_deadline

    @property
    def prevent_playback(self) -> bool:
        """True after the device said another source took over (until reset or =0)."""
        return self._prevent_playback

    def reset(self) -> None:
        """A new stream started: forget prevent-playback and any pending pause."""
        self._pause_deadline = None
        self._prevent_playback = False

    def cancel_pause(self) -> None:
        """Drop a pending debounced pause."""
        self._pause_deadline = None

    def on_volume_sent(self, volume: int, now: float) -> None:
        """We sent ``volume`` (0..100) to the device at ``now``."""
        self._sent_volume = volume
        self._sent_at = now

    def poll(self, player: DacpPlayerState, now: float) -> DacpAction:
        """Fire the debounced pause if it is due (and the player still plays)."""
        if self._pause_deadline is None or now < self._pause_deadline:
            return NO_ACTION
        self._pause_deadline = None
        return DacpAction(ActionKind.PAUSE) if player.playing else NO_ACTION

    def on_command(self, command: DacpCommand, player: DacpPlayerState, now: float) -> DacpAction:
        """Decide what a device command means for ``player`` at time ``now``."""
        kind = command.kind
        direct = _DIRECT_ACTIONS.get(kind)
        if direct is not None:
            return DacpAction(direct)
        if kind in (CommandKind.PLAY, CommandKind.PLAY_RESUME):
            return NO_ACTION if player.playing else DacpAction(ActionKind.PLAY)
        if kind is CommandKind.PAUSE:
            return DacpAction(ActionKind.PAUSE) if player.playing else NO_ACTION
        if kind is CommandKind.DISCRETE_PAUSE:
            if player.playing:
                self._pause_deadline = now + self._debounce_s
            return NO_ACTION
        if kind is CommandKind.PREVENT_PLAYBACK:
            return self._on_prevent_playback(command.value == 1.0, player)
        if kind is CommandKind.DEVICE_VOLUME and command.value is not None:
            return self._on_device_volume(db_to_volume(command.value), player, now)
        if kind is CommandKind.VOLUME and command.value is not None:
            return self._on_device_volume(round(command.value), player, now)
        return NO_ACTION

    def _on_prevent_playback(self, prevent: bool, player: DacpPlayerState) -> DacpAction:
        if not prevent:
            self._prevent_playback = False
            return NO_ACTION
        self._pause_deadline = None
        if player.transitioning or not player.has_stream or self._prevent_playback:
            return NO_ACTION
        self._prevent_playback = True
        return DacpAction(ActionKind.LEAVE_GROUP if player.grouped else ActionKind.STOP_SESSION)

    def _on_device_volume(self, volume: int, player: DacpPlayerState, now: float) -> DacpAction:
        if player.ignore_device_volume:
            return NO_ACTION
        if self._is_echo(volume, now) or volume == player.volume:
            return DacpAction(ActionKind.UPDATE_VOLUME_STATE, volume)
        return DacpAction(ActionKind.SET_VOLUME, volume)

    def _is_echo(self, volume: int, now: float) -> bool:
        if self._sent_volume is None or self._sent_at is None:
            return False
        elapsed = now - self._sent_at
        return (
            0.0 <= elapsed <= self._echo_window_s
            and abs(volume - self._sent_volume) <= self._echo_tolerance
        )
