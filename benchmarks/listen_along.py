"""Listen-along benchmark on loopback: does serving RTSP listeners disturb the rooms?

A 2-room session (RAOP emulators, tests/receivers) plays 10 s, once alone and once with the
listen-along server carrying 20 `ffmpeg -rtsp_transport tcp` listeners (decoding to null) and
one client that PLAYs and never reads. Per run:

- send jitter p99 / max (µs): the rooms' streamers' own wake-up jitter (`[STATUS] stats`),
  worst of the two rooms;
- schedule: the smallest lead (play time − arrival) of any audio packet at a room, packets
  that arrived late, and the spread (frames) between the rooms' schedules of the same frames;
- listeners: how many ffmpeg listeners got ≥ 4 s of audio, whether the stalled one was dropped;
- CPU of this process (session, listen-along server, emulators), % of one core.

The listeners are started by one shell: forking 20 children from this process would stall the
emulators' event loop here and show up as late packets that the rooms never had.

Prints the figures, then one JSON line. Timing figures are noisy on a shared machine; run it
on a quiet one: `.venv/bin/python benchmarks/listen_along.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from airplay_provider.listen_along import ListenAlongServer  # noqa: E402
from airplay_provider.protocol.streamer_status import Stats  # noqa: E402
from airplay_provider.session import StreamSession  # noqa: E402
from tests.audio import test_signal  # noqa: E402
from tests.group_helpers import flow_source, play_ntp, raop_target  # noqa: E402
from tests.receivers.raop_emulator import RaopEmulator  # noqa: E402
from tests.rtsp_listener import rtsp_play_client  # noqa: E402

RATE = 44100
FRAME_NTP = 2**32 / RATE
SECONDS = 10.0
LISTENERS = 20
PATH = "/bench"


async def ffmpeg_listeners(url: str, count: int) -> asyncio.subprocess.Process:
    """`count` ffmpeg listeners, started together by one shell (forking 20 children from this
    process would stall the rooms' emulators in it); each prints how many bytes it decoded."""
    one = f"ffmpeg -v error -rtsp_transport tcp -i {url} -c:a pcm_s16le -f s16le pipe:1 | wc -c"
    script = f"for i in $(seq {count}); do ({one}) & done; wait"
    return await asyncio.create_subprocess_exec(
        "sh", "-c", script, start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def cut_off(reader: asyncio.StreamReader) -> bool:
    """True if the server closed the stalled listener's connection."""
    try:
        async with asyncio.timeout(5):
            while await reader.read(1 << 16):
                pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


async def run(with_listeners: bool) -> dict[str, float | int | bool]:
    emus = [RaopEmulator(), RaopEmulator()]
    for emu in emus:
        await emu.__aenter__()
    server = ListenAlongServer("127.0.0.1", 0)
    await server.start()
    listeners: asyncio.subprocess.Process | None = None
    stalled: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    try:
        session = StreamSession(flow_source(test_signal(SECONDS, seed=90)))
        await session.start([raop_target(f"room{i}", e.port) for i, e in enumerate(emus)])
        members = [session.members[f"room{i}"] for i in range(2)]
        cpu_before, wall_before = time.process_time(), time.monotonic()
        if with_listeners:
            server.add(PATH, session)
            url = server.url(PATH)
            stalled = await rtsp_play_client(url)
            listeners = await ffmpeg_listeners(url, LISTENERS)
        await session.wait_ended(SECONDS + 20)
        cpu = (time.process_time() - cpu_before) / (time.monotonic() - wall_before) * 100
        stats = [m.streamer.last(Stats) for m in members]
        leads = [
            emu.stream.play_time_local(p.rtptime) - p.received_at
            for emu in emus
            for p in emu.stream.audio_packets
        ]
        spread = max(
            abs(play_ntp(emus[0], members[0], f) - play_ntp(emus[1], members[1], f)) / FRAME_NTP
            for f in (0, RATE * 3, RATE * 6)
        )
        result: dict[str, float | int | bool] = {
            "jitter_p99_us": max(s.jitter_p99_us or 0 for s in stats if s is not None),
            "jitter_max_us": max(s.jitter_max_us or 0 for s in stats if s is not None),
            "min_lead_ms": round(min(leads) * 1000, 1),
            "late_packets": sum(len(emu.stream.late_packets()) for emu in emus),
            "room_spread_frames": round(spread, 3),
            # session + listen-along server (+ the emulators): this process, % of one core
            "process_cpu_pct": round(cpu, 1),
        }
        if listeners is not None:
            out, _ = await asyncio.wait_for(listeners.communicate(), 20)
            got = [int(line) for line in out.split()]
            result["listeners_ok"] = sum(n >= 4 * RATE * 4 for n in got)
            assert stalled is not None
            result["stalled_dropped"] = await cut_off(stalled[0])
            result["dropped_count"] = server.streams[PATH].dropped
        return result
    finally:
        if listeners is not None and listeners.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(listeners.pid, signal.SIGKILL)
            await listeners.wait()
        if stalled is not None:
            stalled[1].close()
        await server.close()
        for emu in emus:
            await emu.__aexit__(None, None, None)


async def main() -> None:
    alone = await run(False)
    listened = await run(True)
    print("                         without   with 20 ffmpeg + 1 stalled")
    for key in ("jitter_p99_us", "jitter_max_us", "min_lead_ms", "late_packets", "process_cpu_pct"):
        print(f"{key:24} {alone[key]!s:>8}   {listened[key]!s:>8}")
    print(f"{'room_spread_frames':24} {alone['room_spread_frames']!s:>8}", end="   ")
    print(f"{listened['room_spread_frames']!s:>8}")
    print(f"listeners with >= 4 s of audio: {listened['listeners_ok']} of {LISTENERS}")
    print(f"stalled listener dropped: {listened['stalled_dropped']}")
    print(
        json.dumps(
            {
                "benchmark": "listen_along",
                "listeners": LISTENERS,
                "without": alone,
                "with": listened,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
