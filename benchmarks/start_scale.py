"""Group start at scale on loopback: `airplay-provider play FILE` to N RAOP emulators (and,
optionally, to real shairport-sync receivers), then a late joiner; prints figures per N, then
one JSON line.

Per N (default 1, 4, 8, 16, 32):
- command → audible: from launching `airplay-provider play` to the instant the slowest
  receiver's own sync packets schedule sample 0 of the file;
- sender CPU: every sender process (the CLI, its streamers and ffmpeg), % of one core over
  the whole run, and the machine's core count for scale;
- memory: each player's streamer + ffmpeg (+ its share of the fork server), proportional set
  size (shared pages split among the processes using them), mid-run, MB; largest streamer RSS;
- underruns / late frames: the streamers' own counters (the CLI prints them when non-zero);
- frames got vs sent: per receiver, frames of the file received bit-exact at their place;
  late packets: audio packets that arrived at the receiver after their play time;
- inter-room: largest difference between receivers' schedules of the same frame, in frames;
- late join (in-process session of N members): `add_member` → joiner's first frame
  scheduled, its frames got vs sent, its underruns.

Goals (issue 10): 0 frames lost and 0 underruns for every N; audible ≤ 1.0 s for N ≤ 4,
≤ 2.0 s for N = 32; late join ≤ 1.0 s; inter-room ≤ 1 frame.

    .venv/bin/python benchmarks/start_scale.py --n 8 --runs 10 --seconds 10
    .venv/bin/python benchmarks/start_scale.py --n --shairport 8   # only the real receivers
    (root: receiver lab; a session to all 8, then `play` to 4 of them)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from airplay_provider.protocol.streamer_status import Playing, Stats  # noqa: E402
from airplay_provider.protocol.timing import unix_ns_from_ntp  # noqa: E402
from airplay_provider.session import StreamSession  # noqa: E402
from tests.audio import compare_audio, test_signal  # noqa: E402
from tests.group_helpers import PREROLL_FRAMES, play_ntp, raop_target, s16_to_f32  # noqa: E402
from tests.receivers.raop_emulator import RaopEmulator  # noqa: E402

RATE = 44100
FRAME_NTP = 2**32 / RATE
PAGE = os.sysconf("SC_PAGE_SIZE")
OUTPUT_AHEAD_S = 0.2  # the lab's shairport-sync writes audio this long before its play time


def _stat(member: Any, name: str) -> int:
    """One counter of a member's last `[STATUS] stats` (0 when it never reported)."""
    stats = member.streamer.last(Stats)
    return int(getattr(stats, name)) if stats is not None else 0


def unix_of(ntp: int) -> float:
    """NTP instant → Unix seconds."""
    return unix_ns_from_ntp(ntp) / 1e9


def children_cpu_s() -> float:
    """CPU seconds of every reaped child process (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def descendants(pid: int) -> list[int]:
    """Live descendants of `pid` (from /proc/<pid>/task/*/children)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                kids = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for kid in map(int, kids):
                out.append(kid)
                todo.append(kid)
    return out


def memory_mb(pid: int) -> tuple[str, float, float]:
    """(command name, resident MB, proportional MB) of a live process; ('', 0, 0) if gone.

    Proportional (PSS) shares pages used by several processes (ffmpeg's libraries, the
    interpreter) among them: the honest cost of one more player."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (OSError, ValueError, IndexError):
        return "", 0.0, 0.0
    pss_kb = next(
        (int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0
    )
    if b"cliraop" in cmdline or b"cliap2" in cmdline:
        name = "streamer"
    elif b"airplay_provider.fork_server" in cmdline:  # the server, or a streamer it forked
        parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
        with contextlib.suppress(OSError):
            parent_cmd = Path(f"/proc/{parent}/cmdline").read_bytes()
            name = "streamer" if b"fork_server" in parent_cmd else "fork_server"
    return name, pages * PAGE / 1e6, pss_kb / 1e3


def exact_frames(emu: RaopEmulator, sent: bytes) -> tuple[int, int]:
    """(frames of `sent` received bit-exact at their place, frames missing) at the emulator.

    The received stream is laid out from the first audio packet of the last audio segment;
    sample 0 of `sent` follows the streamer's silent pre-roll; gaps count as wrong frames."""
    segments = [s for s in emu.stream.segments if s.first_audio is not None]
    if not segments:
        return 0, len(sent) // 4
    pcm = segments[-1].pcm
    total = len(sent) // 4
    got = bytearray((PREROLL_FRAMES + total) * 4)
    for offset, chunk in pcm.items():
        if 0 <= offset < PREROLL_FRAMES + total:
            got[offset * 4 : offset * 4 + len(chunk)] = chunk[: len(got) - offset * 4]
    received = array("I", bytes(got[PREROLL_FRAMES * 4 :]))
    expected = array("I", sent[: total * 4])
    good = sum(1 for a, b in zip(received, expected, strict=True) if a == b)
    missing = sum(count for _, count in emu.stream.missing_frames())
    return good, missing


def write_flac(path: Path, pcm: bytes) -> None:
    """The signal as a FLAC file (lossless: the receivers must get exactly `pcm`)."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "s16le", "-ar", "44100", "-ac", "2",
         "-i", "pipe:0", str(path)],
        input=pcm, check=True,
    )  # fmt: skip


async def cli_run(n: int, track: Path, sent: bytes, workdir: Path) -> dict[str, object]:
    """One `airplay-provider play` of `track` to `n` emulators."""
    env = {**os.environ, "AIRPLAY_PROVIDER_CONFIG": str(workdir / "config.json")}
    emus = [RaopEmulator() for _ in range(n)]
    for emu in emus:
        await emu.__aenter__()
    try:
        players = [arg for e in emus for arg in ("--player", f"127.0.0.1:{e.port}")]
        cpu_before = children_cpu_s()
        launched = time.time()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airplay_provider.host.cli", "play", str(track), *players,
            "--interface", "127.0.0.1",
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
        )  # fmt: skip
        memory: list[float] = []
        streamer_rss: list[float] = []
        try:
            for emu in emus:
                await emu.wait_for(lambda core: bool(core.stream.audio_packets), seconds=30)
            await asyncio.sleep(2.0)
            per_kind: dict[str, float] = {}
            for pid in descendants(proc.pid):
                name, rss, pss = memory_mb(pid)
                per_kind[name] = per_kind.get(name, 0.0) + pss
                if name == "streamer":
                    streamer_rss.append(rss)
            players_mb = sum(per_kind.get(k, 0.0) for k in ("streamer", "ffmpeg", "fork_server"))
            memory.append(players_mb / n)
            output, _ = await asyncio.wait_for(proc.communicate(), len(sent) / 4 / RATE + 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        wall = time.time() - launched
        cpu = children_cpu_s() - cpu_before
        text = output.decode(errors="replace")
        underruns = late_frames = 0
        for line in text.splitlines():
            if "underrun(s)" in line:
                words = line.rsplit(":", 1)[1].split()
                underruns += int(words[0])
                late_frames += int(words[2])
        audible, got, missing, late_packets, firsts = [], [], [], [], []
        for emu in emus:
            first_audio = emu.stream.segments[-1].first_audio
            assert first_audio is not None
            first = (first_audio.rtptime + PREROLL_FRAMES) & 0xFFFFFFFF
            firsts.append(first)
            audible.append(unix_of(emu.stream.play_time_ntp(first)) - launched)
            good, lost = exact_frames(emu, sent)
            got.append(good)
            missing.append(lost)
            late_packets.append(len(emu.stream.late_packets()))
        spread = 0.0
        for frame in (0, RATE, 4 * RATE):
            times = [
                e.stream.play_time_ntp((f + frame) & 0xFFFFFFFF)
                for e, f in zip(emus, firsts, strict=True)
            ]
            spread = max(spread, (max(times) - min(times)) / FRAME_NTP)
        return {
            "exit": proc.returncode,
            "audible_s": max(audible),
            "cpu_pct_of_core": 100 * cpu / wall,
            "pss_per_player_mb": statistics.mean(memory) if memory else 0.0,
            "streamer_rss_max_mb": max(streamer_rss, default=0.0),
            "underruns": underruns,
            "late_frames": late_frames,
            "frames_sent": len(sent) // 4,
            "frames_got_min": min(got),
            "frames_lost_total": sum(len(sent) // 4 - g for g in got),
            "gaps_frames": sum(missing),
            "late_packets": sum(late_packets),
            "inter_room_frames": spread,
        }
    finally:
        for emu in emus:
            await emu.__aexit__(None, None, None)


async def chunks(flow: bytes, step: int) -> object:
    """Flow PCM in chunks of `step` bytes (converted beforehand: nothing blocks the loop)."""
    for offset in range(0, len(flow), step):
        yield flow[offset : offset + step]
        await asyncio.sleep(0)


async def late_join_run(n: int, sent: bytes) -> dict[str, object]:
    """A session of `n` emulator members; a joiner added 2 s in."""
    flow = s16_to_f32(sent)
    emus = [RaopEmulator() for _ in range(n + 1)]
    for emu in emus:
        await emu.__aenter__()
    try:
        session = StreamSession(chunks(flow, 4410 * 8))  # type: ignore[arg-type]
        await session.start([raop_target(f"p{i}", e.port) for i, e in enumerate(emus[:n])])
        await asyncio.sleep(2.0)
        requested = time.time()
        join = await session.add_member(raop_target("late", emus[-1].port))
        if join.error is not None:
            return {"error": join.error}
        joiner = session.members["late"]
        await emus[-1].wait_for(lambda core: bool(core.stream.audio_packets), seconds=10)
        async with asyncio.timeout(10):
            while joiner.streamer.last(Playing) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        audible = unix_of(play_ntp(emus[-1], joiner, join.offset)) - requested
        gap = (play_ntp(emus[-1], joiner, join.offset) - play_ntp(emus[0], session.members["p0"],
               join.offset)) / FRAME_NTP  # fmt: skip
        await session.wait_ended(len(sent) / 4 / RATE + 30)
        stats = joiner.streamer.last(Stats)
        tail = sent[4 * join.offset :]
        good, _ = exact_frames(emus[-1], tail)
        return {
            "join_audible_s": audible,
            "join_vs_group_frames": gap,
            "join_frames_sent": len(tail) // 4,
            "join_frames_got": good,
            "join_underruns": stats.underruns if stats is not None else -1,
            "join_late_frames": stats.late if stats is not None else -1,
        }
    finally:
        for emu in emus:
            await emu.__aexit__(None, None, None)


async def shairport_run(count: int, seconds: float) -> dict[str, object]:
    """An in-process session to `count` real shairport-sync receivers (receiver lab, root)."""
    from airplay_provider.host.receivers import ReceiverLab, ReceiverSpec  # noqa: PLC0415

    sent = test_signal(seconds, seed=90)
    async with ReceiverLab() as lab:
        receivers = [
            await lab.start_receiver(ReceiverSpec(name=f"scale{i}-{os.getpid()}"))
            for i in range(count)
        ]
        session = StreamSession(chunks(s16_to_f32(sent), 4410 * 8))  # type: ignore[arg-type]
        commanded = time.time()
        report = await session.start([raop_target(r.name, r.port, encrypt=True) for r in receivers])
        started_in = time.time() - commanded
        await session.wait_ended(seconds + 30)
        underruns = sum(_stat(m, "underruns") for m in session.departed)
        got: list[int] = []
        for receiver in receivers:
            comparison = compare_audio(await receiver.settled_output(), sent)
            got.append(
                len(sent) // 4 - comparison.mismatched_frames - comparison.missing_tail_frames
            )
        result: dict[str, object] = {
            "receivers": count,
            "failed": len(report.failed),
            "start_call_s": started_in,
            # sender side: the instant T the receivers were told to play sample 0 at
            "command_to_t_s": unix_of(session.start_ntp) - commanded,
            "underruns": underruns,
            "frames_sent": len(sent) // 4,
            "frames_got": got,
        }
        for receiver in receivers:
            receiver.clear_output()
        result["cli"] = await shairport_cli_run(receivers[: min(count, 4)], sent)
        return result


async def shairport_cli_run(receivers: list[Any], sent: bytes) -> dict[str, object]:
    """`airplay-provider play FILE` to real receivers: launch → audible, frames got.

    Audible: when sound first appears in a receiver's output (its stdout backend releases
    audio `OUTPUT_AHEAD_S` before the play time) plus that; polled every 5 ms."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-sps-") as tmp:
        track = Path(tmp) / "signal.flac"
        write_flac(track, sent)
        env = {**os.environ, "AIRPLAY_PROVIDER_CONFIG": str(Path(tmp) / "config.json")}
        players = [arg for r in receivers for arg in ("--player", f"127.0.0.1:{r.port}")]
        launched = time.time()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airplay_provider.host.cli", "play", str(track), *players,
            "--interface", "127.0.0.1",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env,
        )  # fmt: skip
        first: dict[str, float] = {}
        try:
            async with asyncio.timeout(15):
                while len(first) < len(receivers):
                    for receiver in receivers:
                        if receiver.name not in first and any(receiver.read_output()):
                            first[receiver.name] = time.time() + OUTPUT_AHEAD_S - launched
                    await asyncio.sleep(0.005)
            await asyncio.wait_for(proc.wait(), len(sent) / 4 / RATE + 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        got = []
        for receiver in receivers:
            comparison = compare_audio(await receiver.settled_output(), sent)
            got.append(
                len(sent) // 4 - comparison.mismatched_frames - comparison.missing_tail_frames
            )
        return {
            "players": len(receivers),
            "exit": proc.returncode,
            "audible_s": max(first.values()) if first else None,
            "frames_got": got,
        }


def summarize(runs: list[dict[str, object]], key: str) -> object:
    values = [r[key] for r in runs if key in r]
    if not values:
        return None
    if all(isinstance(v, int) for v in values):
        worst = min if "frames_got" in key else max  # the worst run
        return worst(values)  # type: ignore[type-var]
    return round(max(float(v) for v in values), 3)  # type: ignore[arg-type]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="*", default=[1, 4, 8, 16, 32])
    parser.add_argument("--runs", type=int, default=1, help="runs per N")
    parser.add_argument("--seconds", type=float, default=10.0, help="signal length")
    parser.add_argument("--no-late-join", action="store_true")
    parser.add_argument("--shairport", type=int, default=0, help="also N real receivers")
    args = parser.parse_args()
    sent = test_signal(args.seconds, seed=77)
    results: dict[str, object] = {"cores": os.cpu_count(), "seconds": args.seconds}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        track = Path(tmp) / "signal.flac"
        write_flac(track, sent)
        for n in args.n:
            runs = [await cli_run(n, track, sent, Path(tmp)) for _ in range(args.runs)]
            if not args.no_late_join:
                join_sent = test_signal(min(args.seconds, 6.0), seed=78)
                runs[0].update(await late_join_run(n, join_sent))
            row = {key: summarize(runs, key) for key in runs[0]}
            row["audible_s_all"] = [round(float(r["audible_s"]), 3) for r in runs]  # type: ignore[arg-type]
            results[f"n{n}"] = row
            print(
                f"N={n:2d}: audible {row['audible_s_all']} s, CPU {row['cpu_pct_of_core']} % of a"
                f" core, {row['pss_per_player_mb']} MB/player (PSS) (streamer max"
                f" {row['streamer_rss_max_mb']}), underruns {row['underruns']}, late frames"
                f" {row['late_frames']}, frames got min {row['frames_got_min']}/"
                f"{row['frames_sent']} (lost {row['frames_lost_total']}), late packets"
                f" {row['late_packets']}, inter-room {row['inter_room_frames']} frames;"
                f" late join {row.get('join_audible_s')} s, got {row.get('join_frames_got')}/"
                f"{row.get('join_frames_sent')}, underruns {row.get('join_underruns')}",
                flush=True,
            )
    if args.shairport:
        results["shairport"] = await shairport_run(args.shairport, args.seconds)
        print("shairport-sync:", results["shairport"])
    print(json.dumps({"benchmark": "start_scale", **results}))


if __name__ == "__main__":
    asyncio.run(main())
