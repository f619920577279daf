"""A member whose streamer exits: the audio pipe may break before the streamer's last status
lines are read. The member must fail with the streamer's own cause (receiver_gone starts a
rejoin), not with "audio pipe closed" — seen under load in CI, where no rejoin followed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

from airplay_provider.host.standalone import manual_device
from airplay_provider.player import AirPlayPlayer
from airplay_provider.protocol.streamer_status import Error, ErrorCode, format_status
from airplay_provider.session.member import MemberState, SessionMember
from airplay_provider.session.players import target_for_player


class BrokenPipeWriter:
    """The streamer's stdin after the streamer closed it: every drain fails."""

    def __init__(self) -> None:
        self.closed = False

    def write(self, data: bytes) -> None:
        del data

    async def drain(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None


def _member(
    tmp_path: Path, seen: list[tuple[MemberState, ErrorCode | str | None]]
) -> SessionMember:
    player = AirPlayPlayer(manual_device("127.0.0.1", 5001, name="Office"))
    target = target_for_player(player, dacp_id="0123456789ABCDEF", active_remote="1")
    return SessionMember(
        target,
        offset=0,
        fifo_dir=tmp_path,
        on_change=lambda m: seen.append((m.state, m.error_code)),
    )


async def test_a_broken_pipe_waits_for_the_streamers_own_cause(tmp_path: Path) -> None:
    seen: list[tuple[MemberState, ErrorCode | str | None]] = []
    member = _member(tmp_path, seen)
    member._pipe = cast(Any, BrokenPipeWriter())
    member._queue.put_nowait(b"\0" * 1408)
    writer = asyncio.create_task(member._write_loop())
    await asyncio.sleep(0)  # the write failed; the streamer's status lines are still on the way
    assert not member.ended
    member.streamer.record(format_status(Error(ErrorCode.RECEIVER_GONE, "receiver gone: closed")))
    member.streamer.returncode = 1
    member.streamer._exited.set()
    await asyncio.wait_for(writer, 2.0)
    failed = [code for state, code in seen if state is MemberState.FAILED]
    assert failed
    assert failed[0] == ErrorCode.RECEIVER_GONE
    assert member.error == "receiver gone: closed"


async def test_a_broken_pipe_without_a_cause_still_fails_within_a_bound(tmp_path: Path) -> None:
    seen: list[tuple[MemberState, ErrorCode | str | None]] = []
    member = _member(tmp_path, seen)
    member._pipe = cast(Any, BrokenPipeWriter())
    member._queue.put_nowait(b"\0" * 1408)
    await asyncio.wait_for(member._write_loop(), 3.0)  # EXIT_CAUSE_WAIT_S is 1 s
    assert member.state is MemberState.FAILED
    assert member.error == "audio pipe closed (BrokenPipeError)"
