"""Benchmark `airplay-provider play-url FILE --player NAME` as a user runs it.

The AirPlay 2 emulator with its video endpoints is announced by mDNS on loopback; the command
runs as a subprocess. Figures per run: launch → the device's ``POST /play`` answered, launch →
the first media bytes fetched by the device from our file server, the command's CPU time and
peak RSS over the whole playback. Prints one line per run, then one JSON line (medians).

    python3 benchmarks/play_url.py [--runs 3] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from zeroconf.asyncio import AsyncZeroconf  # noqa: E402

from tests.integration.test_play_url import media  # noqa: E402
from tests.integration.test_play_url_cli import announce, new_emulator  # noqa: E402
from tests.receivers.ap2_video import VIDEO_FEATURES, Ap2Video  # noqa: E402

HOST = "127.0.0.1"
BYTE_RATE = 100_000


async def one_run(zeroconf: AsyncZeroconf, seconds: float, workdir: Path) -> dict[str, float]:
    """Play one file of `seconds`; the figures."""
    movie = workdir / "movie.mp4"
    movie.write_bytes(media(int(seconds * BYTE_RATE)))
    env = {**os.environ, "AIRPLAY_PROVIDER_CONFIG": str(workdir / "config.json")}
    async with (
        new_emulator(features=VIDEO_FEATURES) as emulator,
        Ap2Video(emulator.device, byte_rate=BYTE_RATE) as video,
    ):
        name = await announce(zeroconf, emulator)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        launched = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airplay_provider.host.cli", "play-url", str(movie),
            "--player", name, "--interface", HOST,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env, cwd=REPO,
        )  # fmt: skip
        played_at = None
        while proc.returncode is None:
            if played_at is None and video.items:
                played_at = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.005)
        err = await proc.stderr.read() if proc.stderr else b""
        if proc.returncode != 0:
            raise SystemExit(f"play-url failed ({proc.returncode}): {err.decode()}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        (item,) = video.items
        assert item.first_byte_at is not None
        assert played_at is not None
    return {
        "play_request_s": played_at - launched,
        "first_byte_s": item.first_byte_at - launched,
        "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "wall_s": time.monotonic() - launched,
        "peak_rss_mb": after.ru_maxrss / 1024,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="media length per run")
    args = parser.parse_args()
    results: list[dict[str, float]] = []
    zeroconf = AsyncZeroconf(interfaces=[HOST])
    try:
        for index in range(args.runs):
            with tempfile.TemporaryDirectory() as workdir:
                figures = await one_run(zeroconf, args.seconds, Path(workdir))
            await zeroconf.async_unregister_all_services()
            results.append(figures)
            print(
                f"run {index + 1}: /play after {figures['play_request_s']:.3f} s, first byte "
                f"after {figures['first_byte_s']:.3f} s, CPU {figures['cpu_s']:.2f} s over "
                f"{figures['wall_s']:.1f} s, peak RSS {figures['peak_rss_mb']:.0f} MB"
            )
    finally:
        await zeroconf.async_close()
    medians = {key: round(statistics.median(r[key] for r in results), 3) for key in results[0]}
    medians["media_s"] = args.seconds
    print(json.dumps({"benchmark": "play_url", **medians}))


if __name__ == "__main__":
    asyncio.run(main())
