"""What a stream keeps grows with nothing but time: jitter statistics and status history are
bounded, so music can play for days (issue: memory grew linearly over a 30-minute group)."""

from __future__ import annotations

import random
import statistics
import tracemalloc
from pathlib import Path

from airplay_provider.protocol.streamer_status import (
    Elapsed,
    Playing,
    Stats,
    StatusEvent,
    format_status,
)
from airplay_provider.session.processes import STATUS_HISTORY, StreamerProcess, StreamTarget
from airplay_provider.streamer.status import JitterStats


def test_jitter_percentiles_match_exact_ones_within_a_bucket() -> None:
    rng = random.Random(3)
    samples = [rng.gauss(0.0002, 0.0004) for _ in range(20_000)] + [0.35, -0.03]
    stats = JitterStats()
    for late in samples:
        stats.add(late)
    micros = sorted(round(s * 1e6) for s in samples)
    summary = stats.summary()
    assert summary["wakeups"] == len(samples)
    assert summary["jitter_max_us"] == 350_000  # exact, even beyond the histogram
    assert abs(summary["jitter_p50_us"] - statistics.median_low(micros)) <= JitterStats.BUCKET_US
    p99 = micros[(len(micros) - 1) * 99 // 100]
    assert abs(summary["jitter_p99_us"] - p99) <= JitterStats.BUCKET_US
    assert JitterStats().summary() == {}


def test_jitter_memory_does_not_grow_with_wakeups() -> None:
    stats = JitterStats()
    tracemalloc.start()
    try:
        for _ in range(10_000):
            stats.add(0.0001)
        before = tracemalloc.take_snapshot()
        for i in range(200_000):  # ~2 hours of wake-ups
            stats.add((i % 997) * 1e-6)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(d.size_diff for d in after.compare_to(before, "filename"))
    assert grown < 10_000


def test_status_history_is_bounded_but_first_and_latest_are_kept(tmp_path: Path) -> None:
    process = StreamerProcess(StreamTarget(name="x", host="127.0.0.1", port=1), tmp_path / "f")
    events: list[StatusEvent] = [Playing(1, 2, 0, 5, 6, 0)]
    events += [Elapsed(ms) for ms in range(0, 7_200_000, 1000)]  # two hours of `elapsed`
    events.append(Stats(10, 0, 0, 0, 0, 0))
    for event in events:
        process.record(format_status(event))
    assert len(process.statuses) == STATUS_HISTORY
    assert process.first_start == events[0]
    assert process.last(Elapsed) == Elapsed(7_199_000)
    assert process.last(Stats) == events[-1]
    assert process.last(Playing) == events[0]
