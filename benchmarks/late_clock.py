"""A group of two AirPlay 2 emulators on PTP in network namespaces, one of them a TV that
advertises PTP and never answers it: from the command (`StreamSession.start`) to the first
sample audible on the normal member, and when and how well the silent one joins. Prints the
figures, then one JSON line.

- start_s: command -> T (the normal member's first sample audible);
- late_join_s: command -> the silent member's first sample audible (on NTP timing);
- late_sched_frames: |its scheduled instant of that frame - the normal member's|, in frames.

Before this change the group waited for the silent member's stall (5 s) and its restart on
NTP before choosing T. To measure an older commit with the same driver: extract it
(`git archive COMMIT | tar -x -C DIR`), copy this file and
tests/integration/test_group_late_clock.py into DIR, run it from there.
Run (root, namespaces): `.venv/bin/python benchmarks/late_clock.py [--trials N]`; timings are
noisy on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from airplay_provider.protocol.timing import unix_ns_from_ntp  # noqa: E402
from tests.audio import test_signal  # noqa: E402
from tests.integration.test_group_late_clock import (  # noqa: E402
    FRAME_NS,
    SIGNAL_S,
    SIGNAL_SEED,
    heard,
    run_group,
    scheduled_unix_ns,
)


async def trial() -> dict[str, float]:
    """One group start; its figures."""
    with tempfile.TemporaryDirectory(prefix="late-clock-") as tmp:
        sent, (normal, silent) = await run_group(
            Path(tmp), [[], ["--silent-ptp", "--sessions", "2"]]
        )
        asked = int(sent["asked_unix_ns"])
        members = {m["key"]: m for m in sent["members"] if m["first_frame"] is not None}
        first, late = members["rx0"], members["rx1"]
        frame = int(late["first_frame"])
        signal = test_signal(SIGNAL_S, seed=SIGNAL_SEED)[frame * 4 :]
        shift = int(sent["wall_minus_mono_ns"])
        normal_at = await scheduled_unix_ns(heard(normal), signal, first, shift)
        late_at = await scheduled_unix_ns(heard(silent), signal, late, shift)
    return {
        "start_s": (int(sent["start_unix_ns"]) - asked) / 1e9,
        "late_join_s": (unix_ns_from_ntp(int(late["actual_ntp"])) - asked) / 1e9,
        "late_first_frame": frame,
        "late_sched_frames": abs(late_at - normal_at) / FRAME_NS,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    runs = [await trial() for _ in range(args.trials)]
    summary: dict[str, object] = {"benchmark": "late_clock", "trials": args.trials}
    for key in ("start_s", "late_join_s", "late_sched_frames"):
        values = [run[key] for run in runs]
        summary[f"{key}_median"] = round(statistics.median(values), 4)
        summary[f"{key}_max"] = round(max(values), 4)
        print(f"{key:18s} median {statistics.median(values):8.3f}  max {max(values):8.3f}")
    summary["runs"] = runs
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
