"""Group-session benchmark on loopback, against RAOP emulators (tests/receivers): prints the
figures, then one JSON line.

- command → first sample audible, 1 and 3 players: from the `StreamSession.start` call (and,
  separately, from launching `airplay-provider play` on a FLAC file) to the instant the
  receiver's own sync packets schedule session sample 0 — not when the sender claims it.
- late join: from `add_member` to the instant the joiner's sync packets schedule its first
  sample, plus that sample's error against the group timeline T + p.
- inter-member schedule error: the largest difference, in frames, between the instants two
  members' receivers schedule the same session frame.
- CPU per player: ffmpeg + cliraop CPU time over a steady 5 s window, as % of one core.

Targets: audible ≤ 1.0 s after the command, late join ≤ 1.0 s, inter-member error ≤ 1 frame.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from airplay_provider.protocol.streamer_status import Playing  # noqa: E402
from airplay_provider.protocol.timing import unix_ns_from_ntp  # noqa: E402
from airplay_provider.session import StreamSession  # noqa: E402
from airplay_provider.session.member import SessionMember  # noqa: E402
from tests.audio import test_signal  # noqa: E402
from tests.group_helpers import PREROLL_FRAMES, flow_source, play_ntp, raop_target  # noqa: E402
from tests.receivers.raop_emulator import RaopEmulator  # noqa: E402

RATE = 44100
FRAME_NTP = 2**32 / RATE
TICK = os.sysconf("SC_CLK_TCK")


def unix_of(ntp: int) -> float:
    """NTP instant → Unix seconds."""
    return unix_ns_from_ntp(ntp) / 1e9


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def wait_first_audio(emu: RaopEmulator) -> None:
    await emu.wait_for(lambda core: bool(core.stream.audio_packets), seconds=10)


async def wait_playing(member: SessionMember) -> None:
    """Until the member's streamer reported `playing` (its anchor for `play_ntp`)."""
    async with asyncio.timeout(10):
        while member.streamer.last(Playing) is None:  # noqa: ASYNC110 - a poll is enough here
            await asyncio.sleep(0.01)


async def start_to_audible(players: int, seconds: float = 2.0) -> dict[str, float]:
    """One session of `players` emulators: start call → sample 0 scheduled; schedule spread."""
    emus = [RaopEmulator() for _ in range(players)]
    for emu in emus:
        await emu.__aenter__()
    try:
        session = StreamSession(flow_source(test_signal(seconds, seed=60 + players)))
        commanded = time.time()
        await session.start([raop_target(f"p{i}", e.port) for i, e in enumerate(emus)])
        for emu in emus:
            await wait_first_audio(emu)
        members: list[SessionMember] = [session.members[f"p{i}"] for i in range(players)]
        for member in members:
            await wait_playing(member)
        # The first sample actually played (a member that started late skips, never shifts).
        firsts = [(m.started.first_sample if m.started else 0) for m in members]
        audible = [
            unix_of(play_ntp(e, m, first)) - commanded
            for e, m, first in zip(emus, members, firsts, strict=True)
        ]
        spread = 0.0
        for frame in (0, RATE // 2, RATE):
            times = [play_ntp(e, m, frame) for e, m in zip(emus, members, strict=True)]
            spread = max(spread, (max(times) - min(times)) / FRAME_NTP)
        await session.wait_ended(seconds + 10)
        return {"audible_s": max(audible), "spread_frames": spread, "skipped": sum(firsts)}
    finally:
        for emu in emus:
            await emu.__aexit__(None, None, None)


async def cli_to_audible(workdir: Path) -> float:
    """`airplay-provider play FILE --player 127.0.0.1:PORT` launch → sample 0 scheduled."""
    track = workdir / "bench.flac"
    await asyncio.to_thread(
        subprocess.run,
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=440:d=2", "-ac", "2",
         str(track)],
        check=True,
    )  # fmt: skip
    env = {**os.environ, "AIRPLAY_PROVIDER_CONFIG": str(workdir / "config.json")}
    async with RaopEmulator() as emu:
        launched = time.time()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airplay_provider.host.cli", "play", str(track),
            "--player", f"127.0.0.1:{emu.port}", "--interface", "127.0.0.1",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env,
        )  # fmt: skip
        try:
            await wait_first_audio(emu)
            first = emu.stream.audio_packets[0].rtptime
            audible = unix_of(emu.stream.play_time_ntp((first + PREROLL_FRAMES) & 0xFFFFFFFF))
            await asyncio.wait_for(proc.wait(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        return audible - launched


async def late_join_and_cpu() -> dict[str, float]:
    """Late join into a running 3-player session; CPU of every member over 5 steady seconds."""
    emus = [RaopEmulator() for _ in range(4)]
    for emu in emus:
        await emu.__aenter__()
    try:
        session = StreamSession(flow_source(test_signal(12.0, seed=70)))
        await session.start([raop_target(f"p{i}", emus[i].port) for i in range(3)])
        await asyncio.sleep(2.0)
        requested = time.time()
        join = await session.add_member(raop_target("late", emus[3].port))
        await wait_first_audio(emus[3])
        joiner = session.members["late"]
        await wait_playing(joiner)
        audible = unix_of(play_ntp(emus[3], joiner, join.offset)) - requested
        on_timeline = (
            play_ntp(emus[3], joiner, join.offset) - (session.start_ntp + join.offset * FRAME_NTP)
        ) / FRAME_NTP
        reference = session.members["p0"]
        later = join.offset + RATE
        gap = (play_ntp(emus[3], joiner, later) - play_ntp(emus[0], reference, later)) / FRAME_NTP
        await asyncio.sleep(1.0)
        pids = {key: m.pids for key, m in session.members.items()}
        before = {key: sum(cpu_seconds(p) for p in ps) for key, ps in pids.items()}
        own_before = time.process_time()
        t0 = time.monotonic()
        await asyncio.sleep(5.0)
        elapsed = time.monotonic() - t0
        after = {key: sum(cpu_seconds(p) for p in ps) for key, ps in pids.items()}
        own = (time.process_time() - own_before) / elapsed * 100
        per_player = [(after[k] - before[k]) / elapsed * 100 for k in pids]
        await session.stop()
        return {
            "late_join_audible_s": audible,
            "late_join_timeline_error_frames": on_timeline,
            "late_join_vs_group_frames": gap,
            "cpu_per_player_pct": statistics.mean(per_player),
            "cpu_per_player_max_pct": max(per_player),
            "cpu_session_process_pct": own,
        }
    finally:
        for emu in emus:
            await emu.__aexit__(None, None, None)


async def main() -> None:
    results: dict[str, object] = {}
    one = [await start_to_audible(1) for _ in range(3)]
    three = [await start_to_audible(3) for _ in range(3)]
    results["audible_1_player_s"] = [round(r["audible_s"], 3) for r in one]
    results["audible_3_players_s"] = [round(r["audible_s"], 3) for r in three]
    results["inter_member_error_frames_max"] = round(max(r["spread_frames"] for r in three), 3)
    results["skipped_frames_at_start"] = int(sum(r["skipped"] for r in one + three))
    with tempfile.TemporaryDirectory(prefix="bench-group-") as tmp:
        results["cli_play_audible_s"] = round(await cli_to_audible(Path(tmp)), 3)
    results.update({k: round(v, 3) for k, v in (await late_join_and_cpu()).items()})
    print("command → first sample audible, 1 player :", results["audible_1_player_s"], "s")
    print("command → first sample audible, 3 players:", results["audible_3_players_s"], "s")
    print("`airplay-provider play` launch → audible  :", results["cli_play_audible_s"], "s")
    print("late join → joiner audible in sync        :", results["late_join_audible_s"], "s")
    print(
        "joiner vs T + p, vs group (frames)        :",
        results["late_join_timeline_error_frames"],
        results["late_join_vs_group_frames"],
    )
    print("inter-member schedule error (frames)      :", results["inter_member_error_frames_max"])
    print("frames skipped at start (lead too short)  :", results["skipped_frames_at_start"])
    print(
        "CPU per player (ffmpeg + cliraop), % core :",
        results["cpu_per_player_pct"],
        "max",
        results["cpu_per_player_max_pct"],
        "; session process",
        results["cpu_session_process_pct"],
    )
    print(json.dumps({"benchmark": "group", **results}))


if __name__ == "__main__":
    asyncio.run(main())
