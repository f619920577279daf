#!/usr/bin/env python3
"""Benchmark: the ALAC encoder (airplay_provider/protocol/alac_encoder.py), no network.

For each signal (music-like at two levels, the tests' chirp + noise, silence, white noise):
- us_per_packet: CPU time (process_time, best of --repeat passes) to encode one 352-frame
  packet, and cpu_pct: that at 44100/352 packets per second as % of one core (one stream);
- saved_pct: bytes saved against uncompressed (escape) frames of 1412 bytes, and how many
  packets went out compressed;
- for the music signals also paced_us_per_packet / paced_cpu_pct: the same, one packet every
  7.98 ms as a streamer sends them (caches go cold in between: what a stream really costs).
The escape-frame encoder's own time is printed as the baseline. Figures depend on the machine
and its load (process_time still suffers from other processes sharing the core's caches).
Usage: alac_encode.py [--seconds 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from airplay_provider.protocol.alac import ALAC_FRAME_BYTES, PCM_BYTES, encode_uncompressed  # noqa: E402
from airplay_provider.protocol.alac_encoder import AlacEncoder  # noqa: E402
from tests.audio import music_like, test_signal  # noqa: E402

PACKETS_PER_S = 44100 / 352
TARGETS = {"cpu_pct": 2.5, "saved_pct": 35.0}  # issue 12: music, one stream


def packets(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + PCM_BYTES] for i in range(0, len(pcm) - PCM_BYTES + 1, PCM_BYTES)]


def cpu_per_packet(encode: Callable[[bytes], bytes], chunks: list[bytes], repeat: int) -> float:
    """Best CPU seconds per packet over `repeat` passes."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for chunk in chunks:
            encode(chunk)
        best = min(best, (time.process_time() - start) / len(chunks))
    return best


def paced_cpu_per_packet(chunks: list[bytes]) -> float:
    """CPU seconds per packet when packets come at the stream's pace."""
    encoder = AlacEncoder()
    used = 0.0
    next_at = time.monotonic()
    for chunk in chunks:
        start = time.process_time()
        encoder.encode(chunk)
        used += time.process_time() - start
        next_at += 1 / PACKETS_PER_S
        time.sleep(max(0.0, next_at - time.monotonic()))
    return used / len(chunks)


def measure(name: str, pcm: bytes, repeat: int, *, paced: bool = False) -> dict[str, object]:
    chunks = packets(pcm)
    sizer = AlacEncoder()
    total = sum(len(sizer.encode(chunk)) for chunk in chunks)
    seconds = cpu_per_packet(AlacEncoder().encode, chunks, repeat)
    extra: dict[str, object] = {}
    if paced:
        paced_seconds = paced_cpu_per_packet(chunks)
        extra = {
            "paced_us_per_packet": round(paced_seconds * 1e6, 1),
            "paced_cpu_pct": round(100 * paced_seconds * PACKETS_PER_S, 2),
        }
    return {
        "signal": name,
        "packets": len(chunks),
        "us_per_packet": round(seconds * 1e6, 1),
        "cpu_pct": round(100 * seconds * PACKETS_PER_S, 2),
        "saved_pct": round(100 * (1 - total / (ALAC_FRAME_BYTES * len(chunks))), 1),
        "compressed_pct": round(100 * sizer.compressed / len(chunks), 1),
        **extra,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    seconds = args.seconds
    signals = {
        "music -6 dBFS peak": music_like(seconds, seed=1, peak=0.5),
        "music -1 dBFS peak": music_like(seconds, seed=2, peak=0.9),
        "chirp + noise": test_signal(seconds, seed=3),
        "silence": bytes(round(seconds * 44100) * 4),
        "white noise": random.Random(4).randbytes(round(seconds * 44100) * 4),
    }
    rows = [
        measure(name, pcm, args.repeat, paced=name.startswith("music"))
        for name, pcm in signals.items()
    ]
    baseline = cpu_per_packet(encode_uncompressed, packets(signals["silence"]), args.repeat)
    print(f"{'signal':20s} {'us/packet':>10s} {'cpu % core':>10s} {'saved %':>8s} {'compr. %':>8s}")
    for row in rows:
        print(
            f"{row['signal']!s:20s} {row['us_per_packet']!s:>10s} {row['cpu_pct']!s:>10s}"
            f" {row['saved_pct']!s:>8s} {row['compressed_pct']!s:>8s}"
        )
    print(f"escape frames (no compression): {baseline * 1e6:.1f} us/packet")
    music = [row for row in rows if str(row["signal"]).startswith("music")]
    for row in music:
        print(
            f"{row['signal']!s:20s} at the stream's pace: {row['paced_us_per_packet']} us/packet,"
            f" {row['paced_cpu_pct']} % of a core"
        )
    worst_cpu = max(float(str(row["paced_cpu_pct"])) for row in music)
    least_saved = min(float(str(row["saved_pct"])) for row in music)
    print(
        f"music: worst {worst_cpu} % of a core (target <= {TARGETS['cpu_pct']}), "
        f"least saved {least_saved} % (target >= {TARGETS['saved_pct']})"
    )
    result = {
        "benchmark": "alac_encode",
        "seconds": seconds,
        "music_paced_cpu_pct": worst_cpu,
        "music_saved_pct": least_saved,
        "escape_us_per_packet": round(baseline * 1e6, 1),
        "signals": rows,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
