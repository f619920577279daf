"""Helpers for group-session tests: flow-PCM sources, schedule checks, process checks."""

from __future__ import annotations

import asyncio
import os
import sys
from array import array
from collections.abc import AsyncIterator, Callable

from airplay_provider.protocol.streamer_status import Playing
from airplay_provider.protocol.txt import StreamingProtocol
from airplay_provider.session import StreamSession
from airplay_provider.session.member import SessionMember
from airplay_provider.session.processes import StreamTarget

FRAME_NTP = 2**32 / 44100  # one frame in NTP units
PREROLL_FRAMES = 3520  # cliraop's silent pre-roll before its first real sample


def s16_to_f32(pcm: bytes) -> bytes:
    """s16le → f32le (exact: ffmpeg converts back to the same s16 values)."""
    samples = array("h")
    samples.frombytes(pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    floats = array("f", (v / 32768.0 for v in samples))
    if sys.byteorder == "big":
        floats.byteswap()
    return floats.tobytes()


async def flow_source(
    pcm_s16: bytes,
    *,
    chunk_seconds: float = 1.0,
    stall_after_s: float | None = None,
    stall_s: float = 0.0,
) -> AsyncIterator[bytes]:
    """Yield `pcm_s16` as flow PCM in chunks; optionally stall once (a slow source)."""
    flow = s16_to_f32(pcm_s16)
    step = int(chunk_seconds * 44100) * 8
    for offset in range(0, len(flow), step):
        if stall_after_s is not None and offset == int(stall_after_s * 44100) * 8:
            await asyncio.sleep(stall_s)
        yield flow[offset : offset + step]


def when(session: StreamSession, predicate: Callable[[], bool]) -> asyncio.Future[None]:
    """Resolves the moment a session listener sees `predicate()` hold (checked at once too)."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def listener(_session: StreamSession) -> None:
        if not future.done() and predicate():
            future.set_result(None)

    session.listeners.append(listener)
    listener(session)
    return future


def raop_target(name: str, port: int, **kwargs: object) -> StreamTarget:
    """A plain RAOP target on loopback (no encryption: the emulator is plain RAOP)."""
    options: dict[str, object] = {"encrypt": False, "latency_ms": 1000, **kwargs}
    return StreamTarget(name=name, host="127.0.0.1", port=port, **options)  # type: ignore[arg-type]


def ap2_target(name: str, port: int, host: str = "127.0.0.1", timing: str = "auto") -> StreamTarget:
    """An AirPlay 2 target for the emulator (model `Test`, 250 ms latency, player id = name)."""
    return StreamTarget(
        name=name,
        host=host,
        port=port,
        protocol=StreamingProtocol.AIRPLAY2,
        latency_ms=250,
        txt={"model": "Test"},
        player_id=name,
        timing=timing,
    )


def play_ntp(emu: object, member: SessionMember, session_frame: int) -> int:
    """When the emulator will play `session_frame` of `member` (from its latest sync packets
    and the member's latest `[STATUS] playing` anchor)."""
    playing = member.streamer.last(Playing)
    assert playing is not None, "member never started"
    first = playing.first_sample
    k = session_frame - member.offset
    rtp = (playing.rtptime + k - first) & 0xFFFFFFFF
    return int(emu.stream.play_time_ntp(rtp))  # type: ignore[attr-defined]


def schedule_error_frames(emu: object, member: SessionMember, session_frame: int) -> float:
    """(scheduled play instant of `session_frame` at the emulator) − (its member's
    `-ntpstart` + (frame − offset)/44100), in frames."""
    k = session_frame - member.offset
    expected = member.start_ntp + k * FRAME_NTP
    return (play_ntp(emu, member, session_frame) - expected) / FRAME_NTP


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def member_pids(session: StreamSession) -> list[int]:
    """Every streamer and ffmpeg pid the session ever ran."""
    members = [*session.members.values(), *session.departed]
    return [pid for m in members for pid in m.pids]


def no_children_left() -> list[int]:
    """Our child processes still alive (should be none after a session)."""
    try:
        with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as handle:
            children = handle.read().split()
    except OSError:
        return []
    return [int(c) for c in children if alive(int(c))]
