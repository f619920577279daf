"""A hi-res session's audio path and timeline, sans-I/O (no streamer started): flow chunks are
converted once to s24le, frames count 6 bytes, and every instant is on ``T + k/48000``; a 16-bit
session stays as it was."""

from __future__ import annotations

import logging
import random
from array import array
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from airplay_provider.listen_along import ListenAlongError, ListenAlongServer
from airplay_provider.pcm_convert import flow_to_s16, flow_to_s24
from airplay_provider.protocol.timing import ntp_add_frames, ntp_from_unix_ns
from airplay_provider.protocol.txt import StreamingProtocol
from airplay_provider.session import SessionError, SessionState, StreamSession, StreamTarget
from airplay_provider.session.member import SessionMember
from airplay_provider.session.pcm_format import CD_FORMAT, HIRES_FORMAT, target_in_format
from airplay_provider.session.timeline import (
    join_position,
    member_start_ntp,
    position_at,
    resume_plan,
)

T = ntp_from_unix_ns(1_800_000_000 * 10**9)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""


def _flow(frames: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return array("f", (rng.uniform(-1, 1) for _ in range(frames * 2))).tobytes()


def test_a_hires_session_converts_once_to_s24_in_6_byte_frames() -> None:
    session = StreamSession(_nothing(), pcm_format=HIRES_FORMAT, ring_seconds=1.0)
    tapped: list[tuple[int, bytes]] = []
    session.pcm_taps.append(lambda first, pcm: tapped.append((first, pcm)))
    first, second = _flow(4800, 1), _flow(48000, 2)
    session._distribute(first)
    session._distribute(second)
    assert session.fed == 4800 + 48000
    assert tapped == [(0, flow_to_s24(first)), (4800, flow_to_s24(second))]
    # the ring keeps one second at 48 kHz, in s24le frames
    assert session.ring.capacity_frames == 48000
    assert b"".join(session.ring.since(4800)) == flow_to_s24(second)
    assert session.rate == 48000


def test_a_16_bit_session_is_unchanged() -> None:
    session = StreamSession(_nothing())
    assert session.pcm_format == CD_FORMAT
    chunk = _flow(4410, 3)
    session._distribute(chunk)
    assert session.fed == 4410
    assert b"".join(session.ring.since(0)) == flow_to_s16(chunk)
    assert session.ring.capacity_frames == 441000


def test_the_timeline_counts_frames_at_the_sessions_rate() -> None:
    assert member_start_ntp(T, 48000, 0, 48000) == ntp_add_frames(T, 1, 1)  # 1 s later
    assert member_start_ntp(T, 44100, 0) == ntp_add_frames(T, 1, 1)
    assert position_at(ntp_add_frames(T, 1, 2), T, 48000) == 24000
    assert position_at(ntp_add_frames(T, 1, 2), T) == 22050
    # a late joiner 1 s after T with 0.5 s of lead joins at frame 1.5 s · 48000 (+1)
    now = ntp_add_frames(T, 1, 1)
    assert join_position(now, T, 0.5, 0, 10**6, rate=48000) == 72001
    plan = resume_plan(now, {"a": (48000, 0), "b": (48000, 10)}, 0.4, 48000)
    assert plan is not None
    # frame 48000 of the new timeline is 0.4 s from now on `a`, 10 ms later on `b`
    assert plan.member_ntp["a"] == ntp_add_frames(now, 2, 5)
    assert member_start_ntp(plan.start_ntp, 48000, 0, 48000) == plan.member_ntp["a"]


def test_members_take_the_sessions_format_and_count_its_frames(tmp_path: Path) -> None:
    session = StreamSession(_nothing(), pcm_format=HIRES_FORMAT)
    session._fifo_dir = tmp_path
    target = StreamTarget("Den", "127.0.0.1", 7000, protocol=StreamingProtocol.AIRPLAY2, hires=True)
    member = session._new_member(target, offset=0)
    assert (member.target.bits, member.target.rate) == (24, 48000)
    assert member.frame_bytes == 6
    plain = SessionMember(target, offset=0, fifo_dir=tmp_path)
    assert plain.frame_bytes == 4
    assert target_in_format(target, CD_FORMAT) == target


async def test_a_hires_session_takes_no_announcement_and_no_listen_along() -> None:
    session = StreamSession(_nothing(), pcm_format=HIRES_FORMAT)
    with pytest.raises(SessionError, match="not mixed into 24-bit/48 kHz sessions"):
        await session.announce(bytes(400))
    server = ListenAlongServer("127.0.0.1", 0)
    with pytest.raises(ListenAlongError, match=r"serves 16-bit/44\.1 kHz only"):
        server.add("/den", session)
    assert server.streams == {}


async def test_a_joiner_that_cannot_take_the_groups_format_is_refused_with_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = StreamSession(_nothing(), pcm_format=HIRES_FORMAT)
    session.state = SessionState.PLAYING  # (as if started: the refusal comes before any spawn)
    attic = StreamTarget("Attic", "127.0.0.1", 5000, hires=True, player_id="attic")
    with caplog.at_level(logging.WARNING):
        join = await session.add_member(attic)
    assert join.offset == -1
    assert join.error is not None
    assert join.error.startswith("Attic cannot join: the group plays 24-bit/48 kHz, but it plays")
    assert join.error in caplog.text
    assert session.members == {}
