"""Benchmark how exactly cliap2 follows a receiver's own PTP clock (a standalone HomePod).

An emulated HomePod (`tests.receivers.ap2_netns --homepod-clock OFFSET_MS,DRIFT_PPM`, in a
network namespace of its own; needs root and `ip netns`) keeps a free clock; cliap2 streams a
signal to it (realtime or buffered) and every anchor it took is turned back into our PTP
timeline with the clock's known truth. Figures: the servo's drift estimate, the number of
anchors, and how far (frames) the samples each anchor governs play from their due time.

    sudo .venv/bin/python benchmarks/homepod_follow.py [--seconds 20] [--drift-ppm 40]
        [--offset-ms -4321.5] [--buffered]

Prints figures and one JSON line. Target: every error within 1 frame (22.7 µs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.audio import test_signal  # noqa: E402
from tests.integration.test_cliap2_homepod import (  # noqa: E402
    _buffered_errors,
    _schedule_errors,
    stream_to_homepod,
)


async def run(seconds: float, offset_ms: float, drift_ppm: float, buffered: bool) -> dict[str, Any]:
    """One stream; the figures."""
    signal = test_signal(seconds, seed=51)
    with TemporaryDirectory() as tmp:
        extra = [f"--homepod-clock={offset_ms},{drift_ppm}", "--timeout", str(seconds + 40)]
        report, start_unix, cliap2, code = await stream_to_homepod(
            Path(tmp), signal, extra, buffered=buffered, wait_s=seconds + 30, check=False
        )
        if code != 0 or report["errors"]:
            raise SystemExit(f"stream failed ({code}): {report['errors']}\n{cliap2.text()}")
        ptp_minus_mono = int(cliap2.status("timing")[0]["ptp_minus_mono_ns"])
        measure = _buffered_errors if buffered else _schedule_errors
        errors = [abs(error) for error in measure(report, signal, start_unix, ptp_minus_mono)]
    tracking = [s for s in cliap2.status("clock") if s["state"] == "tracking"]
    return {
        "stream": "buffered" if buffered else "realtime",
        "seconds": seconds,
        "true_drift_ppm": drift_ppm,
        "estimated_drift_ppm": int(tracking[-1]["drift_ppb"]) / 1000 if tracking else None,
        "anchors": len(report["homepod"]["anchors"]),
        "max_error_frames": round(max(errors), 3),
        "p50_error_frames": round(statistics.median(errors), 3),
        "p99_error_frames": round(sorted(errors)[int(len(errors) * 0.99)], 3),
    }


def main() -> int:
    """Run the benchmark (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--offset-ms", type=float, default=-4321.5)
    parser.add_argument("--drift-ppm", type=float, default=40.0)
    parser.add_argument("--buffered", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(run(args.seconds, args.offset_ms, args.drift_ppm, args.buffered))
    for key, value in figures.items():
        print(f"{key:>22}: {value}")
    print(json.dumps({"benchmark": "homepod_follow", **figures}))
    return 0 if figures["max_error_frames"] <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
