"""Track metadata, progress and volume on a running session, sent to every member.

Title/artist/album/duration, artwork and the progress in the current track go to each member
as streamer commands (`TITLE=…`, `ACTION=SENDMETA`, `PROGRESS=…`); progress is resent every
`PROGRESS_EVERY_S` while playing. `SessionMetadata` holds these methods of `StreamSession`
(group.py); the state they use lives in the session and is declared below.
"""

from __future__ import annotations

import asyncio
from typing import Final

from airplay_provider.session.member import SessionMember
from airplay_provider.session.reports import SessionState, TrackMetadata

PROGRESS_EVERY_S: Final = 10.0


class SessionMetadata:
    """The metadata/progress part of `StreamSession` (a mixin: its state lives in the session)."""

    # The session's state these methods read and write (set in `StreamSession.__init__`).
    members: dict[str, SessionMember]
    state: SessionState
    metadata: TrackMetadata | None
    track_origin_s: float
    _stopping: bool

    @property
    def position_s(self) -> float:
        raise NotImplementedError

    @property
    def active_members(self) -> list[SessionMember]:
        raise NotImplementedError

    @property
    def track_position_s(self) -> float:
        """Seconds into the current track (flow mode: several tracks in one session)."""
        return max(0.0, self.position_s - self.track_origin_s)

    async def set_volume(self, key: str, volume: int) -> bool:
        """Tell one member's receiver its volume (0..100)."""
        member = self.members.get(key)
        if member is None:
            return False
        return await member.send(f"VOLUME={max(0, min(100, volume))}")

    async def set_metadata(
        self, metadata: TrackMetadata, *, track_elapsed_s: float | None = None
    ) -> None:
        """Send title/artist/album/duration, artwork and progress to every member.

        `track_elapsed_s`: how far into this track playback is now (a new track in a flow
        stream); progress is then counted from there.
        """
        self.metadata = metadata
        if track_elapsed_s is not None:
            self.track_origin_s = self.position_s - max(0.0, track_elapsed_s)
        connected = [m for m in self.active_members if m.streamer.connected_at is not None]
        await asyncio.gather(*(self._send_metadata(m, metadata) for m in connected))

    async def _send_metadata(self, member: SessionMember, metadata: TrackMetadata) -> None:
        duration = min(int(metadata.duration_s or 0), 3600)
        await member.send(
            f"TITLE={metadata.title or ''}",
            f"ARTIST={metadata.artist or ''}",
            f"ALBUM={metadata.album or ''}",
            f"DURATION={duration}",
            "PROGRESS=0",
            "ACTION=SENDMETA",
        )
        if metadata.artwork:
            await member.send(f"ARTWORK={metadata.artwork}")
        await member.send(f"PROGRESS={int(self.track_position_s)}")

    async def _send_progress(self) -> None:
        progress = f"PROGRESS={int(self.track_position_s)}"
        await asyncio.gather(*(m.send(progress) for m in self.active_members))

    async def _progress_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(PROGRESS_EVERY_S)
            if self.state is SessionState.PLAYING and self.metadata is not None:
                await self._send_progress()
