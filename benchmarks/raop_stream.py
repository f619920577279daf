#!/usr/bin/env python3
"""Benchmark: bin/cliraop streaming to a real local shairport-sync (loopback only).

Prints the figures and one JSON line:
- cpu_pct: CPU of one core used by the cliraop process in steady state (from 3 s after the start
  until the input ends), and cpu_pct_total over its whole life (start-up included);
- peak_rss_mb: the process's VmHWM;
- jitter_p50_ms / jitter_p99_ms: pacer wake-up time, actual minus scheduled (cliraop sends the
  packets due within a 32 ms window per wake-up, so these are per wake-up);
- connected_ms: process start → `[STATUS] connected`; first_audio_ms: process start → the
  packet carrying input sample 0 left (`[STATUS] started`; the silent pre-roll goes just before);
- delivered: whether the receiver's output holds every sent frame (±2 LSB).
- with --alac: cliraop compresses (-alac), and payload_kbit_s / compressed report the ALAC
  payload rate and how many packets went out compressed; --music streams the music-like test
  signal (tests/audio.py music_like) instead of the chirp + noise one.
Needs root (the receiver lab runs a private avahi/D-Bus).
Usage: raop_stream.py [--seconds 30] [--alac] [--music]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from airplay_provider.host.receivers import ReceiverLab, ReceiverSpec  # noqa: E402
from airplay_provider.protocol.streamer_status import parse_status_fields as parse_status  # noqa: E402
from airplay_provider.streamer.clock import SenderClock  # noqa: E402
from tests.audio import compare_audio, music_like, test_signal  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a live process in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def bench(
    seconds: float, lead_s: float, *, alac: bool = False, music: bool = False
) -> dict[str, object]:
    signal = music_like(seconds, seed=5) if music else test_signal(seconds, seed=5)
    async with ReceiverLab() as lab:
        receiver = await lab.start_receiver(ReceiverSpec(name="bench"))
        t0 = time.monotonic()
        start = SenderClock().ntp() + int(lead_s * 2**32)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bin" / "cliraop"),
            "-ntpstart",
            str(start),
            "-port",
            str(receiver.port),
            "-latency",
            "1000",
            *(["-alac"] if alac else []),
            "127.0.0.1",
            "-",
            stdin=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        marks: dict[str, float] = {}
        stats: dict[str, str] = {}
        rss = 0.0
        cpu_window: list[float] = []

        async def read() -> None:
            assert proc.stderr is not None
            async for raw in proc.stderr:
                parsed = parse_status(raw.decode(errors="replace"))
                if parsed is None:
                    continue
                event, fields = parsed
                marks.setdefault(event, time.monotonic() - t0)
                if event == "stats":
                    stats.update(fields)

        async def feed() -> None:
            assert proc.stdin is not None
            proc.stdin.write(signal)
            await proc.stdin.drain()
            proc.stdin.close()

        async def sample() -> None:
            nonlocal rss
            steady_from = t0 + lead_s + 3.0
            steady_to = t0 + lead_s + seconds - 0.5
            while proc.returncode is None:
                now = time.monotonic()
                try:
                    rss = max(rss, peak_rss_mb(proc.pid))
                    if (not cpu_window and now >= steady_from) or (
                        len(cpu_window) == 2 and now >= steady_to
                    ):
                        cpu_window.extend([now, cpu_seconds(proc.pid)])
                    total = cpu_seconds(proc.pid)
                except FileNotFoundError:
                    break
                stats["_cpu_total"] = str(total)
                await asyncio.sleep(0.2)

        tasks = [asyncio.ensure_future(c) for c in (read(), feed(), sample())]
        code = await proc.wait()
        life = time.monotonic() - t0
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.5)
        comparison = compare_audio(receiver.read_output(), signal)
    steady = (
        100 * (cpu_window[3] - cpu_window[1]) / (cpu_window[2] - cpu_window[0])
        if len(cpu_window) == 4
        else float("nan")
    )
    return {
        "benchmark": "raop_stream",
        "seconds": seconds,
        "alac": alac,
        "signal": "music_like" if music else "test_signal",
        "exit_code": code,
        "cpu_pct": round(steady, 2),
        "cpu_pct_total": round(100 * float(stats.get("_cpu_total", "nan")) / life, 2),
        "peak_rss_mb": round(rss, 1),
        "jitter_p50_ms": int(stats.get("jitter_p50_us", "-1000")) / 1000,
        "jitter_p99_ms": int(stats.get("jitter_p99_us", "-1000")) / 1000,
        "connected_ms": round(1000 * marks.get("connected", float("nan")), 1),
        "first_audio_ms": round(1000 * marks.get("started", float("nan")), 1),
        "packets_sent": int(stats.get("sent", "0")),
        "resent": int(stats.get("resent", "0")),
        "compressed": int(stats.get("compressed", "0")),
        "payload_kbit_s": round(int(stats.get("payload_bytes", "0")) * 8 / seconds / 1000, 1),
        "delivered": comparison.ok,
        "frames_compared": comparison.frames_compared,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--lead", type=float, default=1.0, help="seconds from spawn to ntpstart")
    parser.add_argument("--alac", action="store_true", help="cliraop -alac (compressed)")
    parser.add_argument("--music", action="store_true", help="music-like signal")
    args = parser.parse_args()
    result = asyncio.run(bench(args.seconds, args.lead, alac=args.alac, music=args.music))
    targets = {
        "cpu_pct": 2.5 if args.alac else 2.0,
        "peak_rss_mb": 40.0,
        "jitter_p99_ms": 2.0,
        "connected_ms": 150.0,
    }
    for key, value in result.items():
        target = targets.get(key)
        suffix = f"   (target <= {target})" if target is not None else ""
        print(f"{key:>16}: {value}{suffix}")
    print(json.dumps(result))
    return 0 if result["exit_code"] == 0 and result["delivered"] else 1


if __name__ == "__main__":
    sys.exit(main())
