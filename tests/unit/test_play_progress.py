"""The `play` progress line shows a member whose receiver went away, its way back, and its
return (host/cmd_play.progress_line on a session whose members are set by hand)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from airplay_provider.host.cmd_play import progress_line
from airplay_provider.host.cmd_play_args import add_arguments
from airplay_provider.host.standalone import manual_device
from airplay_provider.player import AirPlayPlayer
from airplay_provider.protocol.streamer_status import Error, ErrorCode
from airplay_provider.session import StreamSession
from airplay_provider.session.member import MemberState, SessionMember
from airplay_provider.session.pcm_format import HIRES_FORMAT, target_in_format
from airplay_provider.session.players import target_for_player
from airplay_provider.session.rejoin import Rejoin, RejoinState


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""


async def test_gone_rejoining_and_rejoined_are_shown(tmp_path: Path) -> None:
    kitchen = AirPlayPlayer(manual_device("127.0.0.1", 5000, name="Kitchen"))
    office = AirPlayPlayer(manual_device("127.0.0.1", 5001, name="Office"))
    session = StreamSession(_nothing())
    members = {}
    for player in (kitchen, office):
        target = target_for_player(player, dacp_id="0123456789ABCDEF", active_remote="1")
        members[player.player_id] = SessionMember(target, offset=0, fifo_dir=tmp_path)
    session.members = dict(members)
    for member in members.values():
        member.state = MemberState.PLAYING
    assert progress_line(session, [kitchen, office], None).endswith(
        "Kitchen: playing  Office: playing"
    )
    # Office's streamer says its receiver is gone: failed at once, dropped, a rejoin waits.
    dead = members[office.player_id]
    dead._on_status(dead.streamer, Error(ErrorCode.RECEIVER_GONE, "receiver gone: it closed"))
    assert dead.state is MemberState.FAILED
    assert dead.error == "receiver gone: it closed"
    del session.members[office.player_id]
    session.departed.append(dead)
    now = asyncio.get_running_loop().time()
    rejoin = session.rejoins[office.player_id] = Rejoin(dead.target, next_at=now + 14.6)
    line = progress_line(session, [kitchen, office], 60.0)
    assert line.endswith("Office: failed (receiver gone), rejoining in 15 s"), line
    rejoin.state, rejoin.attempts = RejoinState.TRYING, 1
    line = progress_line(session, [kitchen, office], 60.0)
    assert line.endswith("Office: failed (receiver gone), rejoining (attempt 1)…"), line
    # Back: a new member under the same key.
    back = SessionMember(dead.target, offset=44100, fifo_dir=tmp_path)
    back.state = MemberState.PLAYING
    session.members[office.player_id] = back
    rejoin.state = RejoinState.REJOINED
    line = progress_line(session, [kitchen, office], 60.0)
    assert line.endswith("Kitchen: playing  Office: playing (rejoined)"), line


async def test_each_members_format_is_shown_once_hires_is_in_play(tmp_path: Path) -> None:
    kitchen = AirPlayPlayer(manual_device("127.0.0.1", 5000, name="Kitchen"))
    office = AirPlayPlayer(manual_device("127.0.0.1", 5001, name="Office"))
    session = StreamSession(_nothing())
    for player in (kitchen, office):
        member = SessionMember(target_for_player(player), offset=0, fifo_dir=tmp_path)
        member.state = MemberState.PLAYING
        session.members[player.player_id] = member
    # Nobody asked for hi-res: the line is as it always was.
    assert progress_line(session, [kitchen, office], None).endswith(
        "Kitchen: playing  Office: playing"
    )
    # Office wanted hi-res but plays 16-bit/44.1 kHz: every member shows its format.
    session.format_notes[office.player_id] = "plays 16-bit/44.1 kHz, not hi-res: RAOP"
    assert progress_line(session, [kitchen, office], None).endswith(
        "Kitchen: playing [16-bit/44.1 kHz]  Office: playing [16-bit/44.1 kHz, not hi-res]"
    )
    # A mixed group: Kitchen plays hi-res, Office 16-bit through the group's branch.
    hires = StreamSession(_nothing(), pcm_format=HIRES_FORMAT)
    hires.members = dict(session.members)
    kitchen_member = hires.members[kitchen.player_id]
    kitchen_member.target = target_in_format(kitchen_member.target, HIRES_FORMAT)
    hires.format_notes = dict(session.format_notes)
    assert progress_line(hires, [kitchen, office], None).endswith(
        "Kitchen: playing [24-bit/48 kHz]  Office: playing [16-bit/44.1 kHz, not hi-res]"
    )


def test_hires_flag_is_a_per_run_override() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["f.flac", "--player", "A"]).hires is None  # the setting decides
    assert parser.parse_args(["f.flac", "--player", "A", "--hires"]).hires is True
    assert parser.parse_args(["f.flac", "--player", "A", "--no-hires"]).hires is False
