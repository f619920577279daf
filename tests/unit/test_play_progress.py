"""The `play` progress line shows a member whose receiver went away, its way back, and its
return (host/cmd_play.progress_line on a session whose members are set by hand)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from airplay_provider.host.cmd_play import progress_line
from airplay_provider.host.standalone import manual_device
from airplay_provider.player import AirPlayPlayer
from airplay_provider.protocol.streamer_status import Error, ErrorCode
from airplay_provider.session import StreamSession
from airplay_provider.session.member import MemberState, SessionMember
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
