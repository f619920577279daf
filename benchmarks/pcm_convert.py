"""CPU cost of the session's one conversion per chunk (pcm_convert.py): flow f32le → s16le at
44.1 kHz (every group) and → s24le at 48 kHz (hi-res groups), on the event loop, whatever the
number of rooms. Prints figures, then one JSON line.

- s16_44k_ms_per_s / s24_48k_ms_per_s: ms of CPU per second of audio, 1 s chunks (as Music
  Assistant's flow stream delivers them).
- branch_ms_per_s: a mixed group's 16-bit branch (session/branch.py): its ffmpeg resampling
  the group's s24le 48 kHz to 44.1 kHz plus our conversion and bookkeeping, ms of CPU (ours
  and the child's) per second of audio, over 10 s (the ffmpeg start included: ~80 ms once).

Target: < 50 ms per second of audio (the feed keeps ≥ 0.25 s ahead of the rooms; a chunk must
not hold the loop long enough to jitter the members' writers).
Run: `.venv/bin/python benchmarks/pcm_convert.py` (noisy on a busy machine).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import resource
import statistics
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from airplay_provider.pcm_convert import flow_to_s16, flow_to_s24  # noqa: E402
from airplay_provider.session.branch import FormatBranch  # noqa: E402
from airplay_provider.session.pcm_format import CD_FORMAT, HIRES_FORMAT  # noqa: E402


def cost_ms(convert: Callable[[bytes], bytes], rate: int, *, seconds: int = 5) -> float:
    """CPU ms per second of audio converting `seconds` of noise in 1 s chunks."""
    rng = random.Random(1)
    chunk = array("f", (rng.uniform(-1.0, 1.0) for _ in range(rate * 2))).tobytes()
    begun = time.process_time()
    for _ in range(seconds):
        convert(chunk)
    return (time.process_time() - begun) * 1000 / seconds


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _branch_run(seconds: int) -> None:
    rng = random.Random(2)
    second = rng.randbytes(48000 * HIRES_FORMAT.bytes_per_frame)
    branch = FormatBranch(
        CD_FORMAT,
        HIRES_FORMAT,
        first_frame=0,
        ring_seconds=10.0,
        deliver=lambda _branch, _pcm: None,
        logger=logging.getLogger(__name__),
    )
    await branch.start()
    for _ in range(seconds):
        branch.write(second)
    branch.write(None)
    await asyncio.wait_for(branch.ended.wait(), 60)
    await branch.stop()
    assert branch.fed == seconds * 44100, branch.fed


def branch_cost_ms(seconds: int = 10) -> float:
    """CPU ms (ours and ffmpeg's) per second of audio through a 16-bit branch."""
    ours, theirs = time.process_time(), _children_cpu_s()
    asyncio.run(_branch_run(seconds))
    spent = time.process_time() - ours + _children_cpu_s() - theirs
    return spent * 1000 / seconds


def main() -> None:
    figures = {
        "branch_ms_per_s": statistics.median(branch_cost_ms() for _ in range(3)),
        "s16_44k_ms_per_s": statistics.median(cost_ms(flow_to_s16, 44100) for _ in range(3)),
        "s24_48k_ms_per_s": statistics.median(cost_ms(flow_to_s24, 48000) for _ in range(3)),
    }
    for name, value in figures.items():
        print(f"{name}: {value:.2f}")
    print(json.dumps({"benchmark": "pcm_convert", **{k: round(v, 3) for k, v in figures.items()}}))


if __name__ == "__main__":
    main()
