"""The provider's side of streaming: players → stream targets, one StreamSession per group
leader, and player state kept in step with the session's members."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final, Protocol

from music_assistant_models.enums import PlaybackState
from music_assistant_models.player import PlayerMedia

from airplay_provider.player import AirPlayPlayer
from airplay_provider.protocol.errors import AirplayError
from airplay_provider.protocol.txt import StreamingProtocol
from airplay_provider.session.announcing import collect_announcement
from airplay_provider.session.group import SessionError, SessionState, StreamSession, TrackMetadata
from airplay_provider.session.member import MemberState
from airplay_provider.session.pcm_format import CD_FORMAT, group_format, target_format
from airplay_provider.session.processes import StreamTarget
from airplay_provider.streamer.raop_options import MAX_LATENCY_MS, MIN_LATENCY_MS
from airplay_provider.streamer_launcher import ForkServer

#: Sessions an announcement can be mixed into. Not a paused one: mixed in, it would only be
#: heard at the resume, maybe hours later; the announcement plays alone instead (the paused
#: session stopped, as Music Assistant's own announcement does for a paused player).
_ANNOUNCEABLE: Final = (SessionState.STARTING, SessionState.PLAYING)
ANNOUNCE_GRACE_S: Final = 5.0  # past its expected end, waiting for an announcement gives up
UpdateCallback = Callable[[AirPlayPlayer], None]


class SourceFactory(Protocol):
    """The host's flow PCM (f32le stereo) for `media` at `sample_rate` (44100 or 48000)."""

    def __call__(
        self, player_id: str, media: PlayerMedia, sample_rate: int = CD_FORMAT.rate
    ) -> AsyncIterator[bytes]:
        """An async iterator of PCM chunks."""
        ...


class PlaybackError(AirplayError):
    """A player cannot be streamed to (no address, no usable protocol, nothing connected)."""


class StreamTokens(Protocol):
    """Hands out and retires per-stream Active-Remote tokens (the provider's remote control)."""

    def new_stream(self, player_id: str) -> str:
        """A fresh unguessable token that maps to `player_id` until retired."""
        ...

    def retire(self, token: str) -> None:
        """The stream with this token ended: requests carrying it do nothing from now on."""
        ...


def target_for_player(
    player: AirPlayPlayer, *, dacp_id: str | None = None, active_remote: str | None = None
) -> StreamTarget:
    """The stream target of `player`: address, protocol, TXT, settings, volume."""
    protocol = player.protocol
    device = player.device
    if protocol is None or player.address is None:
        raise PlaybackError(f"{player.name}: no usable address or protocol")
    record = device.airplay if protocol is StreamingProtocol.AIRPLAY2 else device.raop
    port = device.airplay_port if protocol is StreamingProtocol.AIRPLAY2 else device.raop_port
    if record is None or port is None:
        raise PlaybackError(f"{player.name}: no service for {protocol.name}")
    settings = player.settings
    if protocol is StreamingProtocol.AIRPLAY2:
        latency = settings.airplay_latency_ms
    else:
        latency = max(MIN_LATENCY_MS, min(MAX_LATENCY_MS, settings.output_buffer_ms))
    return StreamTarget(
        name=player.name,
        host=player.address,
        port=port,
        protocol=protocol,
        volume=player.state.volume_level,
        latency_ms=latency,
        sync_adjust_ms=settings.sync_adjust_ms,
        encrypt=settings.encryption,
        alac=settings.alac_encode,
        ap2_stream_type=settings.ap2_stream_type,
        hires=settings.hires_audio,
        txt=dict(record.txt),
        password=settings.password,
        secret=player.credentials,
        dacp_id=dacp_id,
        active_remote=int(active_remote) if active_remote is not None else None,
        udn=record.service_name,
        hostname=device.hostname,
        player_id=player.player_id,
        fallback_hosts=tuple(a for a in device.fallback_addresses if a != player.address),
        timing=settings.airplay2_timing,
    )


def player_format(
    player: AirPlayPlayer, session: StreamSession | None = None
) -> tuple[str | None, str | None]:
    """(format the player streams, why not hi-res when it asked for it): in `session` when it
    plays there, else what a play of it alone would use (the session's own choice,
    `group_format`); (None, None) when it has no route."""
    if session is not None:
        member = session.members.get(player.player_id)
        shown = target_format(member.target) if member is not None else session.pcm_format
        return str(shown), session.format_notes.get(player.player_id)
    try:
        target = target_for_player(player)
    except PlaybackError:
        return None, None
    choice = group_format([target])
    return str(choice.members[target.key]), choice.notes.get(target.key)


def metadata_from_media(media: PlayerMedia) -> TrackMetadata:
    """What receivers show for `media`."""
    return TrackMetadata(
        title=media.title,
        artist=media.artist,
        album=media.album,
        duration_s=float(media.duration) if media.duration else None,
        artwork=media.image_url,
    )


_STATE_OF_MEMBER = {
    MemberState.CONNECTING: PlaybackState.PLAYING,
    MemberState.PLAYING: PlaybackState.PLAYING,
    MemberState.PAUSED: PlaybackState.PAUSED,
}


class GroupPlayback:
    """One session per group leader; members join and leave running sessions."""

    def __init__(
        self,
        players: Callable[[str], AirPlayPlayer | None],
        source: SourceFactory,
        on_update: UpdateCallback,
        *,
        dacp_id: str | None = None,
        logger: logging.Logger | None = None,
        launcher: ForkServer | None = None,
    ) -> None:
        self._players = players
        self.launcher = launcher
        self._source = source
        self._on_update = on_update
        self.dacp_id = dacp_id
        self.logger = logger or logging.getLogger(__name__)
        self.sessions: dict[str, StreamSession] = {}
        # Per player: bumped by every play and stop, so a start that a newer command
        # overtook (stop while connecting, next while starting) gives up quietly.
        self._intent: dict[str, int] = {}
        #: Set while a DACP server runs: each stream then gets its own random token.
        self.tokens: StreamTokens | None = None
        self._announcing: dict[tuple[int, str], asyncio.Task[None]] = {}

    def _target(self, player: AirPlayPlayer) -> StreamTarget:
        token = self.tokens.new_stream(player.player_id) if self.tokens is not None else None
        return target_for_player(player, dacp_id=self.dacp_id, active_remote=token)

    def session_of(self, player_id: str) -> tuple[str, StreamSession] | None:
        """(leader id, session) of the running session `player_id` plays in."""
        for leader, session in self.sessions.items():
            if player_id == leader or player_id in session.members:
                return leader, session
        return None

    def _claim(self, player_ids: Sequence[str]) -> dict[str, int]:
        for player_id in player_ids:
            self._intent[player_id] = self._intent.get(player_id, 0) + 1
        return {player_id: self._intent[player_id] for player_id in player_ids}

    def _overtaken(self, claim: dict[str, int]) -> bool:
        return any(self._intent.get(player_id) != value for player_id, value in claim.items())

    async def play(
        self, leader: AirPlayPlayer, members: Sequence[AirPlayPlayer], media: PlayerMedia
    ) -> StreamSession | None:
        """Stop what the players were doing and start one session for all of them.

        None when a newer command for one of the players (a stop, another play) arrived
        meanwhile: nothing is left playing and no error is raised.
        """
        everyone = [leader, *[m for m in members if m.player_id != leader.player_id]]
        claim = self._claim([p.player_id for p in everyone])
        for player in everyone:
            await self._stop_session(player.player_id)
        if self._overtaken(claim):
            return None
        targets = [self._target(p) for p in everyone]
        # The group's format (the session sets each member's and logs why a member that wanted
        # hi-res does not get it: no hidden down-conversion).
        choice = group_format(targets)
        for target in targets:
            if choice.members[target.key].hires:
                self.logger.info("%s plays %s (hi-res)", target.name, choice.format)
        rate = choice.format.rate
        source = (
            self._source(leader.player_id, media, rate)
            if rate != CD_FORMAT.rate
            else self._source(leader.player_id, media)
        )
        session = StreamSession(
            source, logger=self.logger, launcher=self.launcher, pcm_format=choice.format
        )
        session.listeners.append(self._sync_states)
        self.sessions[leader.player_id] = session
        for player in everyone:
            player.state.current_media = media
        try:
            report = await session.start(targets, metadata_from_media(media))
        except SessionError as exc:
            if self.sessions.get(leader.player_id) is session:
                del self.sessions[leader.player_id]
            self._sync_states(session)
            if self._overtaken(claim):
                return None
            raise PlaybackError(str(exc)) from exc
        if self._overtaken(claim):  # a stop that came while the members were connecting
            return None
        for failed in report.failed:
            # Already reported as removed by the session: one line per failure is enough.
            self.logger.debug("%s did not start: %s", failed.name or failed.key, failed.error)
        return session

    async def join(self, leader_id: str, player: AirPlayPlayer) -> None:
        """Late-join `player` into the running session of `leader_id` (no-op if none)."""
        session = self.sessions.get(leader_id)
        if session is None or session.state is SessionState.ENDED:
            return
        current = self.session_of(player.player_id)
        if current is not None and current[1] is not session:
            await self.leave(player.player_id)
        player.state.current_media = next(
            (p.state.current_media for p in self._known(session) if p.state.current_media), None
        )
        join = await session.add_member(self._target(player))
        if join.error is not None and join.offset >= 0:
            self.logger.warning("%s could not join: %s", player.name, join.error)

    async def leave(self, player_id: str) -> None:
        """Take `player_id` out of its session; a leader leaving stops the whole session."""
        found = self.session_of(player_id)
        if found is None:
            return
        leader, session = found
        if player_id == leader:
            await self.stop(player_id)
        elif player_id in session.members:
            await session.remove_member(player_id)

    async def pause(self, player_id: str) -> None:
        """Pause the group `player_id` plays in (all members stay aligned)."""
        found = self.session_of(player_id)
        if found is not None:
            await found[1].pause()

    async def resume(self, player_id: str) -> bool:
        """Resume a paused group; False when there is nothing to resume."""
        found = self.session_of(player_id)
        if found is None or found[1].state is not SessionState.PAUSED:
            return False
        await found[1].resume()
        return True

    async def stop(self, player_id: str) -> None:
        """Stop the session `player_id` leads or plays in, and any start still under way."""
        self._claim([player_id])
        await self._stop_session(player_id)

    async def _stop_session(self, player_id: str) -> None:
        found = self.session_of(player_id)
        if found is None:
            return
        leader, session = found
        self.sessions.pop(leader, None)
        await session.stop()
        self._sync_states(session)

    async def set_media(
        self, player_id: str, media: PlayerMedia, track_elapsed_s: float | None = None
    ) -> bool:
        """Show a new track of a running flow stream on the group's receivers; False if none."""
        found = self.session_of(player_id)
        if found is None:
            return False
        await found[1].set_metadata(metadata_from_media(media), track_elapsed_s=track_elapsed_s)
        return True

    async def announce(self, player_id: str, media: PlayerMedia, key: str) -> bool:
        """Mix `media` over the music of the session `player_id` plays in (every room of the
        group) and wait until it was heard; False when no session plays. Calls with the same
        `key` for the same session while one is under way share it (members asked one by one).
        AudioSourceError when its audio cannot be had, PlaybackError when the session ends."""
        found = self.session_of(player_id)
        if found is None or found[1].state not in _ANNOUNCEABLE:
            return False
        session = found[1]
        slot = (id(session), key)
        task = self._announcing.get(slot)
        if task is None:
            task = asyncio.create_task(self._announce(session, player_id, media))
            self._announcing[slot] = task
            task.add_done_callback(lambda _: self._announcing.pop(slot, None))
        await asyncio.shield(task)
        return True

    async def _announce(self, session: StreamSession, player_id: str, media: PlayerMedia) -> None:
        pcm_format = session.pcm_format  # (a hi-res session: decoded at 48 kHz, mixed in s24)
        pcm = await collect_announcement(
            self._source(player_id, media, pcm_format.rate),
            media.title or media.uri,
            pcm_format=pcm_format,
        )
        try:
            placed = await session.announce(pcm, pcm_format=pcm_format)
        except SessionError as exc:
            raise PlaybackError(str(exc)) from exc
        left_s = placed.duck_end / session.rate - session.position_s
        if not await session.wait_announced(placed, timeout=left_s + ANNOUNCE_GRACE_S):
            self.logger.info("announcement on %s not played to the end", player_id)

    async def set_volume(self, player: AirPlayPlayer) -> None:
        """Send the player's volume to its running stream, if any."""
        found = self.session_of(player.player_id)
        if found is not None:
            await found[1].set_volume(player.player_id, player.state.volume_level)

    async def close(self) -> None:
        """Stop every session (and the announcements under way)."""
        for task in list(self._announcing.values()):
            task.cancel()
        for leader in list(self.sessions):
            await self.stop(leader)

    def _known(self, session: StreamSession) -> list[AirPlayPlayer]:
        keys = [*session.members, *(m.key for m in session.departed)]
        return [p for p in (self._players(k) for k in dict.fromkeys(keys)) if p is not None]

    def _sync_states(self, session: StreamSession) -> None:
        """Mirror member states and the session position onto the players."""
        if session.state is SessionState.ENDED:
            for leader, running in list(self.sessions.items()):
                if running is session:
                    del self.sessions[leader]
        if self.tokens is not None:
            # A member retried on NTP, set aside or rejoining keeps its target and so its token:
            # retire only the tokens no member uses any more.
            in_use = {
                *(m.target.active_remote for m in session.members.values()),
                *(m.target.active_remote for m in session.waiting.values()),
                *(r.target.active_remote for r in session.rejoins.values() if r.active),
            }
            for gone in session.departed:
                token = gone.target.active_remote
                if token is not None and token not in in_use:
                    self.tokens.retire(str(token))
        position = session.elapsed_s
        for player in self._known(session):
            member = session.members.get(player.player_id)
            state = PlaybackState.IDLE
            if member is not None:
                state = _STATE_OF_MEMBER.get(member.state, PlaybackState.IDLE)
            if state is PlaybackState.IDLE:
                player.state.current_media = None
                player.set_elapsed(None)
            else:
                player.set_elapsed(position)
            if player.state.playback_state is not state or state is not PlaybackState.IDLE:
                player.state.playback_state = state
                self._on_update(player)
