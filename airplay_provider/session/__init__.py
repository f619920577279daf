"""Multi-room playback on the provider side (docs/ARCHITECTURE.md §5).

`group` (StreamSession: one group, one source, one timeline; its audio path in `feed`, its
states and reports in `reports`), `member` (one receiver's streamer and write queue), `rejoin`
(a gone member's retry ladder), `timeline` (the session's pure start/join/resume arithmetic),
`processes` (one streamer process: argv, spawn, `[STATUS]`, command FIFO) and `players`
(GroupPlayback: players and groups → sessions). The names callers use are importable from here.
"""

from airplay_provider.session.group import (
    MEMBER_FAILURE,
    JoinReport,
    SessionError,
    SessionState,
    StartReport,
    StreamSession,
    TrackMetadata,
)
from airplay_provider.session.member import MemberState, SessionMember
from airplay_provider.session.players import GroupPlayback, PlaybackError, target_for_player
from airplay_provider.session.processes import StreamerProcess, StreamTarget
from airplay_provider.session.rejoin import RejoinState

__all__ = [
    "MEMBER_FAILURE",
    "GroupPlayback",
    "JoinReport",
    "MemberState",
    "PlaybackError",
    "RejoinState",
    "SessionError",
    "SessionMember",
    "SessionState",
    "StartReport",
    "StreamSession",
    "StreamTarget",
    "StreamerProcess",
    "TrackMetadata",
    "target_for_player",
]
