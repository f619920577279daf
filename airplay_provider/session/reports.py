"""What a group session is and reports: its states, track metadata, start and join reports."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airplay_provider.protocol.errors import AirplayError

if TYPE_CHECKING:
    from airplay_provider.session.processes import StreamTarget


class SessionError(AirplayError):
    """The session cannot do what was asked (nothing to play to, not running...)."""


class SessionState(enum.StrEnum):
    """Life cycle of a session."""

    IDLE = "idle"
    STARTING = "starting"
    PLAYING = "playing"
    PAUSED = "paused"
    DRAINING = "draining"  # source ended; members play out their tail
    ENDED = "ended"


@dataclass(frozen=True)
class TrackMetadata:
    """What receivers show: text, duration, artwork (local path or http URL)."""

    title: str | None = None
    artist: str | None = None
    album: str | None = None
    duration_s: float | None = None
    artwork: str | None = None


@dataclass
class JoinReport:
    """How a member was started: its first session frame and when that frame is audible."""

    key: str
    offset: int
    start_ntp: int
    connect_s: float | None = None
    error: str | None = None
    name: str = ""  # the player's name, for messages
    #: The same player on other timing: NTP when its receiver never followed our PTP clock,
    #: PTP again when it then refused NTP.
    fallback: StreamTarget | None = None
    #: Why it joined after the group's start (its clock was not ready when the others were).
    late: str | None = None


@dataclass
class StartReport:
    """Result of `StreamSession.start`."""

    start_ntp: int
    lead_s: float  # the provisional lead used to pace the source while members connected
    members: list[JoinReport] = field(default_factory=list)

    @property
    def failed(self) -> list[JoinReport]:
        """Members that did not connect (reported and dropped)."""
        return [m for m in self.members if m.error is not None]
