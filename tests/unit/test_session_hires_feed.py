"""A hi-res session's audio path and timeline, sans-I/O (no streamer started): flow chunks are
converted once to s24le, frames count 6 bytes, and every instant is on ``T + k/48000``; a 16-bit
session stays as it was."""

from __future__ import annotations

import asyncio
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
from airplay_provider.session import SessionError, StreamSession, StreamTarget
from airplay_provider.session.branch import branch_frame, step_frames
from airplay_provider.session.branching import BRANCH_HOLDBACK_S
from airplay_provider.session.member import SessionMember
from airplay_provider.session.mixing import announcement_at
from airplay_provider.session.pcm_format import CD_FORMAT, HIRES_FORMAT, target_in_format
from airplay_provider.session.timeline import (
    FEED_PIECE_S,
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
    target = StreamTarget(
        "Den",
        "127.0.0.1",
        7000,
        protocol=StreamingProtocol.AIRPLAY2,
        hires=True,
        txt={"features": "0x4A7FDFD5,0xBC157FDE", "model": "ShairportSync"},  # buffered
    )
    member = session._new_member(target, offset=0)
    assert (member.target.bits, member.target.rate) == (24, 48000)
    assert member.frame_bytes == 6
    plain = SessionMember(target, offset=0, fifo_dir=tmp_path)
    assert plain.frame_bytes == 4
    assert target_in_format(target, CD_FORMAT) == target


async def test_a_hires_session_is_served_to_listen_along_in_its_format() -> None:
    """(L24/48000/2: tests/unit/test_listen_along_hires.py; announcements are mixed in its
    format: tests/unit/test_announce_mixing_hires.py.)"""
    session = StreamSession(_nothing(), pcm_format=HIRES_FORMAT)
    server = ListenAlongServer("127.0.0.1", 0)
    server.add("/den", session)
    stream = server.streams["/den"]
    assert session.pcm_taps == [stream.tap]
    stream.tap(48000, bytes(6 * 1500))  # 6-byte frames: one packet of 1024, one of 476
    assert [(first, len(pcm)) for first, pcm in stream._pending] == [(48000, 6144), (49024, 2856)]
    with pytest.raises(ListenAlongError, match="already served"):
        server.add("/den", session)
    await server.close()


def test_members_are_set_to_their_format_in_the_group(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    session = StreamSession(_nothing(), pcm_format=HIRES_FORMAT)
    session._fifo_dir = tmp_path
    attic = StreamTarget("Attic", "127.0.0.1", 5000, hires=True, player_id="attic")
    with caplog.at_level(logging.WARNING):
        member = session._new_member(attic, offset=0)
        session._new_member(attic, offset=0)  # (a rejoin: said once)
    assert (member.target.bits, member.target.rate) == (16, 44100)
    assert session.format_notes["attic"].startswith("plays 16-bit/44.1 kHz, not hi-res: it plays")
    assert caplog.text.count("Attic plays 16-bit/44.1 kHz, not hi-res") == 1


async def test_a_branch_carries_the_group_to_its_16_bit_members_on_the_timeline(
    tmp_path: Path,
) -> None:
    """One resampler for the 16-bit members of a 24-bit/48 kHz group: an impulse at session
    frame 24000 (0.5 s) reaches them at branch frame 22050 (0.5 s)."""
    session = StreamSession(_nothing(), pcm_format=HIRES_FORMAT)
    session._fifo_dir = tmp_path
    targets = [StreamTarget(f"R{i}", "127.0.0.1", 5000 + i, player_id=f"r{i}") for i in range(2)]
    members = [session._new_member(t, offset=0) for t in targets]
    session.members = {m.key: m for m in members}
    branch = await session._open_branch(CD_FORMAT, 0)
    try:
        samples = [0.0] * (48000 * 2)
        samples[24000 * 2] = samples[24000 * 2 + 1] = 0.5
        flow = array("f", samples).tobytes()
        session._distribute(flow[: len(flow) // 2])
        session._distribute(flow[len(flow) // 2 :])
        session._end_input()
        await asyncio.wait_for(branch.ended.wait(), 10)
    finally:
        await session._stop_branches()
    assert session.branches == {CD_FORMAT: branch}  # one for both members
    assert branch.fed == 44100
    for member in members:
        assert member.frames_fed == 44100
        chunks: list[bytes] = []
        while not member._queue.empty():
            chunk = member._queue.get_nowait()
            if chunk is not None:
                chunks.append(chunk)
        pcm = array("h")
        pcm.frombytes(b"".join(chunks))
        left = pcm[0::2]
        assert max(range(len(left)), key=lambda i: abs(left[i])) == 22050
    assert b"".join(branch.ring.since(0)) == b"".join(chunks)


def test_branches_start_on_frames_both_rates_count_whole() -> None:
    assert step_frames(48000, 44100) == (160, 147)
    assert branch_frame(48000, 48000, 44100) == 44100
    assert branch_frame(160 * 7, 48000, 44100) == 147 * 7
    with pytest.raises(ValueError, match="not a multiple of 160"):
        branch_frame(100, 48000, 44100)
    assert member_start_ntp(T, 147, 0, 44100) == member_start_ntp(T, 160, 0, 48000)


async def test_a_mixed_group_without_ffmpeg_fails_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("airplay_provider.session.branch.shutil.which", lambda _: None)
    session = StreamSession(_nothing(), pcm_format=HIRES_FORMAT)
    den = StreamTarget(
        "Den",
        "127.0.0.1",
        7000,
        protocol=StreamingProtocol.AIRPLAY2,
        hires=True,
        txt={"features": "0x4A7FDFD5,0xBC157FDE", "model": "ShairportSync"},
    )
    attic = StreamTarget("Attic", "127.0.0.1", 5000, player_id="attic")
    with pytest.raises(SessionError, match="cannot resample for the 16-bit members: ffmpeg"):
        await session.start([den, attic])
    assert session.state == "ended"
    assert session._fifo_dir is not None
    assert not session._fifo_dir.exists()
    assert session.branches == {}


async def test_stopping_a_branch_mid_stream_leaves_no_process(tmp_path: Path) -> None:
    session = StreamSession(_nothing(), pcm_format=HIRES_FORMAT)
    branch = await session._open_branch(CD_FORMAT, 0)
    session._distribute(_flow(48000, 5))  # input still open: ffmpeg waits for more
    await session._stop_branches()
    proc = branch._proc
    assert proc is not None
    assert proc.returncode is not None  # killed and reaped
    assert all(task.done() for task in branch._tasks)


async def test_a_branch_puts_out_its_input_while_more_is_to_come() -> None:
    """A live source: 0.2 s fed and the input still open. The branch puts it out at once (but
    for what its resampler keeps until more comes), not after ~1 s of input (ffmpeg probing
    its input held that back: a live group's 16-bit members started holding nothing)."""
    session = StreamSession(_nothing(), pcm_format=HIRES_FORMAT)
    branch = await session._open_branch(CD_FORMAT, 0)
    try:
        session._distribute(_flow(9600, 6))
        assert not session._branches_caught_up()  # nothing came out yet
        assert await session._wait_primed([], 0.2, timeout=5.0)  # the start waits for it
        assert session._branches_caught_up()
        assert not branch.ended.is_set()  # (caught up, not ended)
    finally:
        await session._stop_branches()
    assert 8820 - round(BRANCH_HOLDBACK_S * 44100) <= branch.fed <= 8820


def test_while_an_announcement_is_mixed_the_source_is_fed_in_short_pieces() -> None:
    """The mix is per sample in Python (~65 ms a second of 24/48 audio): a whole source chunk
    at once held the event loop over 0.1 s (seen in Music Assistant). With an announcement
    due, each pass feeds at most FEED_PIECE_S; without one, the chunk goes whole."""
    chunk = _flow(96000, 7)  # 2 s at 48 kHz
    for announcing in (False, True):
        session = StreamSession(_nothing(), pcm_format=HIRES_FORMAT, ring_seconds=3.0)
        session._priming = False
        tapped: list[int] = []

        def tap(first: int, pcm: bytes, seen: list[int] = tapped) -> None:
            seen.append(len(pcm) // 6)

        session.pcm_taps.append(tap)
        if announcing:
            voice = flow_to_s24(_flow(24000, 8))
            placed = announcement_at(voice, 48000, earliest_frame=0, pcm_format=HIRES_FORMAT)
            session.mixer.add(placed)
        session._pending.append(chunk)
        session._pending_to_members()
        if announcing:
            assert tapped == [round(FEED_PIECE_S * 48000)]
            assert len(session._pending) == 1  # the rest waits for the next pass
        else:
            assert tapped == [96000]
            assert not session._pending
