"""`airplay-provider play SOURCE --player NAME ...`: play a file, URL or stdin on one or more
receivers in sync, with a live progress line; Ctrl-C stops cleanly.

Players are found by mDNS (name, player id or MAC) or given as ``HOST:PORT`` (a RAOP receiver
without mDNS). Title, artist, album and cover art come from the source's tags (ffprobe).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from music_assistant_models.enums import MediaType
from music_assistant_models.player import PlayerMedia

from airplay_provider.audio_source import AudioSourceError, TrackInfo, extract_cover, probe
from airplay_provider.config import CONF_AIRPLAY2_TIMING, CONF_HIRES_AUDIO, CONF_SYNC_ADJUST
from airplay_provider.host import listen_cli
from airplay_provider.host.cmd_play_args import EarlyProbe
from airplay_provider.host.config_store import ConfigStore, ConfigStoreError, identity_path
from airplay_provider.host.names import (
    SUBSTRING_SETTLE_S,
    ambiguous_message,
    is_exact,
    match_players,
)
from airplay_provider.host.signals import GracefulStop, run_interruptible
from airplay_provider.host.standalone import StandaloneHost, manual_device
from airplay_provider.identity import IdentityError, load_or_create_dacp_id
from airplay_provider.listen_along import ListenAlongError, ListenAlongServer
from airplay_provider.player import AirPlayPlayer
from airplay_provider.protocol.errors import AirplayError
from airplay_provider.protocol.streamer_status import ErrorCode, Stats
from airplay_provider.provider import AirPlayProvider
from airplay_provider.session.announcing import decode_announcement
from airplay_provider.session.clock import clock_label
from airplay_provider.session.group import (
    MEMBER_FAILURE,
    SessionError,
    SessionState,
    StreamSession,
)
from airplay_provider.session.pcm_format import (
    CD_FORMAT,
    FORMAT_NOTE,
    format_label,
    target_format,
)
from airplay_provider.session.players import PlaybackError
from airplay_provider.session.rejoin import RejoinState
from airplay_provider.streamer_launcher import ForkServer

_ALIVE = (SessionState.PLAYING, SessionState.PAUSED, SessionState.DRAINING)
REMOTE_CONTROL_DELAY_S = 1.0
EXIT_FAILED = 1
EXIT_USAGE = 2
#: Some players played to the end, at least one failed.
EXIT_PARTIAL = 3


class PlayCommandError(AirplayError):
    """A failure with a message for the user and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _host_port(text: str) -> tuple[str, int] | None:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


def _player_name(player: AirPlayPlayer) -> str:
    return player.name


def _player_ids(player: AirPlayPlayer) -> tuple[str, ...]:
    return (player.player_id, player.mac_address)


def _pick(players: Sequence[AirPlayPlayer], text: str, *, settled: bool) -> AirPlayPlayer | None:
    """The player `text` names (`host.names`); a name part only once discovery `settled`."""
    matches = match_players(players, text, name=_player_name, ids=_player_ids)
    if len(matches) == 1:
        player = matches[0]
        if settled or is_exact(text, player.name, _player_ids(player)):
            return player
    elif matches and settled:
        candidates = [(p.name, p.player_id) for p in matches]
        raise PlayCommandError(ambiguous_message(text, candidates), EXIT_USAGE)
    return None


async def find_players(
    provider: AirPlayProvider,
    host: StandaloneHost,
    wanted: Sequence[str],
    timeout: float,
) -> list[AirPlayPlayer]:
    """The players for `wanted`, in order: HOST:PORT added directly, names found by mDNS."""
    found: dict[str, AirPlayPlayer] = {}
    for text in wanted:
        address = _host_port(text)
        if address is not None:
            await provider.device_added(manual_device(*address, name=text))
    begun = time.monotonic()
    deadline = begun + timeout
    while True:
        await provider.wait_idle()
        now = time.monotonic()
        settled = now - begun >= min(SUBSTRING_SETTLE_S, timeout) or now > deadline
        seen = list(host.players.values())
        for text in wanted:
            if text not in found:
                match = _pick(seen, text, settled=settled)
                if match is not None:
                    found[text] = match
        if len(found) == len(wanted) or now > deadline:
            break
        await asyncio.sleep(0.1)
    missing = [text for text in wanted if text not in found]
    if missing:
        names = ", ".join(sorted(p.name for p in host.players.values())) or "none"
        raise PlayCommandError(f"player(s) not found: {', '.join(missing)} (seen: {names})")
    return [found[text] for text in wanted]


def progress_line(
    session: StreamSession, players: Sequence[AirPlayPlayer], duration: float | None
) -> str:
    """`1:02 / 3:45  Kitchen: playing [ptp ready]  Office: failed (receiver gone), rejoining in
    4 s` (AirPlay 2 members show their timing and its state in brackets, and a member whose
    clock was not ready at the start that it joins late, and why; once hi-res is in play,
    every member shows its format: `[24-bit/48 kHz]`, `[16-bit/44.1 kHz, not hi-res]`)."""
    position = _clock(session.position_s)
    total = f" / {_clock(duration)}" if duration else ""
    states = []
    gone = {m.key: m for m in session.departed}
    now = asyncio.get_running_loop().time()
    hires_shown = session.pcm_format.hires or bool(session.format_notes)
    for player in players:
        waiting = session.waiting.get(player.player_id)
        member = session.members.get(player.player_id) or waiting or gone.get(player.player_id)
        state = member.state.value if member is not None else "starting"
        rejoin = session.rejoins.get(player.player_id)
        if member is not None and member.error_code == ErrorCode.RECEIVER_GONE:
            state = f"{state} (receiver gone)"
        clock = clock_label(member.streamer) if member is not None else None
        if clock is not None:  # AirPlay 2: `ptp ready`, `ptp probing`, `ntp`, …
            state = f"{state} [{clock}]"
        if hires_shown:  # `24-bit/48 kHz`, or `16-bit/44.1 kHz, not hi-res` (it wanted it)
            note = session.format_notes.get(player.player_id)
            shown = target_format(member.target) if member is not None else session.pcm_format
            state = f"{state} [{format_label(shown, note)}]"
        if member is not None and member.late_reason is not None and not member.ended:
            late = "joins late" if waiting is not None else "joined late"
            state += f" ({late}: {member.late_reason})"
        if rejoin is not None and rejoin.state is not RejoinState.HALTED:
            if player.player_id not in session.members:
                state += f", {rejoin.describe(now)}"
            elif rejoin.state is RejoinState.REJOINED:
                state += " (rejoined)"
        states.append(f"{player.name}: {state}")
    return f"{position}{total}  " + "  ".join(states)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{secs:04.1f}"


async def _probe(source: str, early: EarlyProbe | None) -> TrackInfo:
    if source == "-":
        return TrackInfo()
    if early is not None and early.proc is not None:
        return await probe(source, started=early.proc)
    return await probe(source)


async def _cover_later(session: StreamSession, source: str, info: TrackInfo, workdir: Path) -> None:
    """Extract the cover while the start goes on; the receivers get it once it is there."""
    if source == "-" or info.cover_stream is None:
        return
    cover = await extract_cover(source, info, workdir)
    if cover is not None and session.metadata is not None and session.state in _ALIVE:
        await session.set_metadata(dataclasses.replace(session.metadata, artwork=str(cover)))


async def play(args: argparse.Namespace, out: TextIO, stop: GracefulStop) -> int:
    """Run the whole command; returns the exit code."""
    with tempfile.TemporaryDirectory(prefix="airplay-play-") as workdir:
        # The source is probed while the players are looked up; an unreadable one still stops
        # the command before anything plays.
        early: EarlyProbe | None = getattr(args, "early_probe", None)
        probing = asyncio.create_task(_probe(args.source, early))
        try:
            return await _set_up_and_play(args, probing, Path(workdir), out, stop)
        finally:
            if not probing.done():
                probing.cancel()
            with contextlib.suppress(asyncio.CancelledError, AudioSourceError):
                await probing
            if early is not None:
                early.kill()


async def _set_up_and_play(
    args: argparse.Namespace,
    probing: asyncio.Task[TrackInfo],
    workdir: Path,
    out: TextIO,
    stop: GracefulStop,
) -> int:
    store: ConfigStore | None = ConfigStore()
    dacp_id: str | None = None
    try:
        assert store is not None
        store.load()
        dacp_id = load_or_create_dacp_id(identity_path(store.path))
    except (ConfigStoreError, IdentityError) as err:
        print(f"warning: {err}; using defaults", file=out)
        store = None
    host = StandaloneHost(store)
    launcher: ForkServer | None = getattr(args, "launcher", None)
    provider = AirPlayProvider(host, interfaces=args.interfaces, dacp_id=dacp_id, launcher=launcher)
    host.provider = provider
    # Discovery starts at once; the DACP service (aiohttp, ~1.5 s of mDNS probing) starts
    # once audio plays instead of delaying the first sample.
    init = asyncio.create_task(provider.handle_async_init(remote_control=False))
    try:
        await asyncio.sleep(0)
        return await _play_on(
            args,
            host=host,
            provider=provider,
            probing=probing,
            workdir=workdir,
            out=out,
            stop=stop,
        )
    finally:
        with contextlib.suppress(Exception):
            await init
        await provider.unload()


async def _play_on(
    args: argparse.Namespace,
    *,
    host: StandaloneHost,
    provider: AirPlayProvider,
    probing: asyncio.Task[TrackInfo],
    workdir: Path,
    out: TextIO,
    stop: GracefulStop,
) -> int:
    if args.announce_at is not None and args.announce is None:
        raise PlayCommandError("--announce-at needs --announce", EXIT_USAGE)
    if args.announce == "-":
        raise PlayCommandError("--announce needs a file or URL (not stdin)", EXIT_USAGE)
    announcing = None
    if args.announce is not None:  # decoded while the players are looked up
        announcing = asyncio.create_task(decode_announcement(args.announce))
    try:
        return await _play_found(
            args,
            announcing=announcing,
            host=host,
            provider=provider,
            probing=probing,
            workdir=workdir,
            out=out,
            stop=stop,
        )
    finally:
        if announcing is not None and not announcing.done():
            announcing.cancel()
            with contextlib.suppress(asyncio.CancelledError, AudioSourceError):
                await announcing


async def _play_found(
    args: argparse.Namespace,
    *,
    announcing: asyncio.Task[bytes] | None,
    host: StandaloneHost,
    provider: AirPlayProvider,
    probing: asyncio.Task[TrackInfo],
    workdir: Path,
    out: TextIO,
    stop: GracefulStop,
) -> int:
    finding = asyncio.create_task(
        find_players(provider, host, args.players, args.discovery_timeout)
    )
    await asyncio.wait({finding, probing}, return_when=asyncio.FIRST_EXCEPTION)
    if probing.done() and probing.exception() is not None:
        finding.cancel()  # an unreadable source: no need to wait for the players
        with contextlib.suppress(asyncio.CancelledError, PlayCommandError):
            await finding
    info = await probing
    players = await finding
    announcement = None if announcing is None else await announcing
    if len({p.player_id for p in players}) != len(players):
        raise PlayCommandError("a player was named twice", EXIT_USAGE)
    for name, ms in args.sync_adjust:
        chosen = [p for text, p in zip(args.players, players, strict=True) if text == name]
        chosen = chosen or match_players(players, name, name=_player_name, ids=_player_ids)
        if len(chosen) > 1:
            candidates = [(p.name, p.player_id) for p in chosen]
            raise PlayCommandError(f"--sync-adjust {ambiguous_message(name, candidates)}", 2)
        if not chosen:
            raise PlayCommandError(f"--sync-adjust {name}: not one of the --player names", 2)
        host.overrides.setdefault(chosen[0].player_id, {})[CONF_SYNC_ADJUST] = ms
    if getattr(args, "hires", None) is not None:  # --hires / --no-hires: this run only
        for player in players:
            host.overrides.setdefault(player.player_id, {})[CONF_HIRES_AUDIO] = args.hires
    if getattr(args, "timing", None):
        for player in players:
            host.overrides.setdefault(player.player_id, {})[CONF_AIRPLAY2_TIMING] = args.timing
    for player in players:
        provider.reload_player_settings(player.player_id)
        if args.volume is not None:
            player.state.volume_level = args.volume
    leader, *others = players
    if others:
        await provider.set_members(leader.player_id, [p.player_id for p in others])
    media = PlayerMedia(
        uri=args.source,
        media_type=MediaType.TRACK,
        title=info.title or (Path(args.source).stem if args.source != "-" else "stdin"),
        artist=info.artist,
        album=info.album,
        duration=int(info.duration_s) if info.duration_s else None,
    )
    try:
        await provider.play_media(leader.player_id, media)
    except PlaybackError as err:
        raise PlayCommandError(f"playback failed to start: {err}") from err
    found = provider.playback.session_of(leader.player_id)
    if found is None:
        raise PlayCommandError("playback failed to start")
    session = found[1]
    listen = await _listen_along(args, session, leader.name)
    if announcement is not None:
        # Decoded at 16-bit/44.1 kHz while the players were looked up (a bad file fails early);
        # a hi-res session decodes the file again in its own format.
        what = announcement if session.pcm_format == CD_FORMAT else args.announce
        try:
            placed = await session.announce(what, at=args.announce_at)
        except (SessionError, AudioSourceError) as err:
            print(f"announcement not played: {err}", file=out)
        else:
            print(f"announcement at {_clock(placed.start_s)}", file=out)
    finished = asyncio.Event()
    remote = asyncio.create_task(_remote_control_later(provider, finished))
    cover = asyncio.create_task(_cover_later(session, args.source, info, workdir))
    try:
        return await _follow(session, players=players, info=info, out=out, stop=stop)
    finally:
        finished.set()
        cover.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await cover
        await remote  # not cancelled midway: a half-started DACP server would leak
        if listen is not None:
            await listen.close()


async def _listen_along(
    args: argparse.Namespace, session: StreamSession, name: str
) -> ListenAlongServer | None:
    """`--listen-port`: serve the session over RTSP (a port in use: a warning, play goes on)."""
    try:
        server = await listen_cli.start_server(args)
    except OSError as err:
        print(f"warning: listen along: {err}", file=sys.stderr, flush=True)
        return None
    if server is not None:
        try:
            listen_cli.serve(server, session, name, sys.stderr)
        except ListenAlongError as err:  # (a hi-res group) play goes on without it
            print(f"warning: listen along: {err}", file=sys.stderr, flush=True)
            await server.close()
            return None
    return server


async def _remote_control_later(provider: AirPlayProvider, finished: asyncio.Event) -> None:
    """DACP (remote buttons) once the start is over: its import would stall the start."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(finished.wait(), REMOTE_CONTROL_DELAY_S)
        return  # played out (or stopped) before: not needed
    await provider.start_remote_control()


async def _follow(
    session: StreamSession,
    *,
    players: Sequence[AirPlayPlayer],
    info: TrackInfo,
    out: TextIO,
    stop: GracefulStop,
) -> int:
    """Show progress until the session ends or the user stops it; the exit code."""
    title = session.metadata.title if session.metadata else None
    print(f"playing {title!r} on {', '.join(p.name for p in players)}", file=out)
    for player in players:  # no hidden down-conversion: why a player is not hi-res
        note = session.format_notes.get(player.player_id)
        if note is not None:
            print(f"{player.name} {note}", file=out)
    tty = out.isatty()
    last_print, last_states = 0.0, ""
    reported: set[str] = set()
    stop.armed = True  # from now on a signal stops playback here, gently
    while not stop.is_set() and session.state is not SessionState.ENDED:
        _report_failures(session, reported, out, tty)
        line = progress_line(session, players, info.duration_s)
        states = line.split("  ", 1)[-1]
        now = time.monotonic()
        if tty:
            print("\r" + line + "\x1b[K", end="", file=out, flush=True)
        elif now - last_print >= 1.0 or states != last_states:  # a change shows at once
            print(line, file=out, flush=True)
            last_print, last_states = now, states
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
    interrupted = stop.is_set()
    position = session.position_s
    await session.stop()
    if tty:
        print(file=out)
    finished = [m for m in session.departed if m.state == "finished"]
    _report_failures(session, reported, out, tty)
    for member in [] if interrupted else session.departed:  # a stop cuts streams short
        stats = member.streamer.last(Stats)
        if stats is not None and (stats.underruns or stats.late):  # audio the receiver missed
            print(
                f"{member.target.name}: {stats.underruns} underrun(s), {stats.late} late frame(s)",
                file=out,
            )
    if session.source_error:
        print(f"source: {session.source_error}", file=out)
    if interrupted:
        print(f"stopped at {_clock(position)}", file=out)
        return 128 + (stop.signum or 2)  # as the shell reports a signal; 130 for Ctrl-C
    print(f"done: {len(finished)} of {len(players)} player(s) played to the end", file=out)
    if not finished or session.source_error:
        return EXIT_FAILED
    return EXIT_PARTIAL if len(finished) < len(players) else 0


def _report_failures(session: StreamSession, reported: set[str], out: TextIO, tty: bool) -> None:
    """One line per failed member, by name, when it fails (the core's warning is left out).

    A member whose receiver went away stays in the session while it waits to rejoin: it is
    reported too, once.
    """
    for member in [*session.members.values(), *session.departed]:
        if member.state == "failed" and member.key not in reported:
            reported.add(member.key)
            prefix = "\r\x1b[K" if tty else ""
            print(f"{prefix}{member.target.name} failed: {member.error}", file=out, flush=True)


class _ShownByCommand(logging.Filter):
    """Leaves out the log records of what the command prints itself (member failures, format
    notes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, MEMBER_FAILURE, False) and not getattr(
            record, FORMAT_NOTE, False
        )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Entry point of the subcommand."""
    out = out or sys.stdout

    stop = GracefulStop()
    shown = _ShownByCommand()
    handlers = logging.getLogger().handlers
    for handler in handlers:
        handler.addFilter(shown)
    try:
        return run_interruptible(play(args, out, stop), stop)
    except AudioSourceError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except PlayCommandError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    finally:
        for handler in handlers:
            handler.removeFilter(shown)
