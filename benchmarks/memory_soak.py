"""Memory over a long stream: a group session to real shairport-sync receivers (loopback, root)
plays an endless signal while the resident memory of this process (the provider side: session,
members, status parsing) and of every streamer process is sampled; prints the samples, the growth
rate after warm-up (least squares over the second half, MB per hour), and one JSON line.

    .venv/bin/python benchmarks/memory_soak.py --minutes 20 --every 30 --receivers 3
    .venv/bin/python benchmarks/memory_soak.py --minutes 5 --tracemalloc   # + what grew

Target: flat after warm-up (|growth| well under 1 MB/h for each process). Before the fixes a
30-minute group of three grew ~2.9 MB/h in the provider and ~1.2 MB/h per streamer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from airplay_provider.host.receivers import ReceiverLab, ReceiverSpec  # noqa: E402
from airplay_provider.session import StreamSession  # noqa: E402
from airplay_provider.session.processes import StreamTarget  # noqa: E402
from tests.audio import test_signal  # noqa: E402
from tests.group_helpers import s16_to_f32  # noqa: E402


def rss_mb(pid: int) -> float:
    """Resident set size of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) points, in MB per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 3600


async def endless(seconds_per_chunk: float = 0.5) -> AsyncIterator[bytes]:
    """A test signal repeated forever, as flow PCM (the same bytes objects each time)."""
    flow = s16_to_f32(test_signal(10.0, seed=5))
    step = int(seconds_per_chunk * 44100) * 8
    chunks = [flow[i : i + step] for i in range(0, len(flow), step)]
    while True:
        for chunk in chunks:
            yield chunk


async def soak(minutes: float, every: float, receivers: int, trace: bool) -> dict[str, object]:
    async with ReceiverLab() as lab:
        started = [
            await lab.start_receiver(ReceiverSpec(f"soak{i}-{os.getpid()}"))
            for i in range(receivers)
        ]
        targets = []
        for receiver in started:
            service = await lab.wait_advertised(receiver)
            targets.append(
                StreamTarget(receiver.name, "127.0.0.1", service.port, txt=service.txt_dict())
            )
        session = StreamSession(endless())
        report = await session.start(targets)
        if report.failed:
            raise SystemExit(f"members failed: {report.failed}")
        pids = {m.key: m.streamer.pid for m in session.members.values()}
        samples: list[dict[str, float]] = []
        begin = time.monotonic()
        snapshot = None
        try:
            while (elapsed := time.monotonic() - begin) < minutes * 60:
                await asyncio.sleep(every)
                for receiver in started:
                    receiver.clear_output()  # the receivers' output would fill the disk
                row = {"t": round(time.monotonic() - begin, 1), "provider": rss_mb(os.getpid())}
                row.update({key: rss_mb(pid) for key, pid in pids.items() if pid is not None})
                samples.append(row)
                streamers = " ".join(f"{k}={v:.1f}" for k, v in row.items() if k not in ("t",))
                print(f"{row['t']:7.0f} s  RSS MB: {streamers}", flush=True)
                if trace and snapshot is None and elapsed > minutes * 30:
                    tracemalloc.start()
                    snapshot = tracemalloc.take_snapshot()
            if trace and snapshot is not None:
                grown = tracemalloc.take_snapshot().compare_to(snapshot, "lineno")
                print("tracemalloc, largest growth since half time:")
                for stat in grown[:10]:
                    print(f"  {stat}")
        finally:
            await session.stop()
    half = [s for s in samples if s["t"] >= minutes * 30]
    growth = {
        key: round(slope_per_hour([(s["t"], s[key]) for s in half]), 2)
        for key in samples[0]
        if key != "t"
    }
    return {
        "minutes": minutes,
        "receivers": receivers,
        "samples": len(samples),
        "rss_first_mb": {k: round(v, 1) for k, v in samples[0].items() if k != "t"},
        "rss_last_mb": {k: round(v, 1) for k, v in samples[-1].items() if k != "t"},
        "growth_mb_per_h_after_warmup": growth,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--receivers", type=int, default=3)
    parser.add_argument("--tracemalloc", action="store_true", help="show what grew")
    args = parser.parse_args()
    result = asyncio.run(soak(args.minutes, args.every, args.receivers, args.tracemalloc))
    growth = result["growth_mb_per_h_after_warmup"]
    assert isinstance(growth, dict)
    for key, value in growth.items():
        print(f"{key}: {value:+.2f} MB/h after warm-up")
    print(json.dumps({"benchmark": "memory_soak", **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
