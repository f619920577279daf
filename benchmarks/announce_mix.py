"""CPU cost of mixing an announcement into the session's audio (session/mixing.py), which runs
once per chunk on the event loop, whatever the number of rooms. Prints figures, then one JSON
line.

- mix: ms of CPU per second of audio while an announcement plays (1 s chunks, as Music
  Assistant's flow stream delivers them), and per 0.1 s chunk (the feed's pieces at a start).
- passthrough: the same outside any announcement (no copy).
- hires_mix: the mix in a hi-res session (s24le, 48 kHz frames), 1 s chunks.

Target: mixing < 100 ms per second of audio (the feed keeps ≥ 0.25 s ahead of the rooms).
Run: `.venv/bin/python benchmarks/announce_mix.py` (noisy on a busy machine).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from airplay_provider.protocol.pcm_format import CD, HIRES, PcmFormat  # noqa: E402
from airplay_provider.session.mixing import AnnouncementMixer, announcement_at  # noqa: E402

RATE = 44100


def cost_ms(
    chunk_frames: int, *, announcing: bool, seconds: int = 5, pcm_format: PcmFormat = CD
) -> float:
    """CPU ms per second of audio for `seconds` of audio in `chunk_frames` chunks."""
    rng = random.Random(1)
    size = pcm_format.bytes_per_frame
    music = rng.randbytes(seconds * pcm_format.rate * size)
    voice = rng.randbytes(seconds * pcm_format.rate * size)
    mixer = AnnouncementMixer(pcm_format)
    if announcing:
        placed = announcement_at(voice, 0, earliest_frame=0, ramp_s=0.0, pcm_format=pcm_format)
        mixer.add(placed)
    step = chunk_frames * size
    begun = time.process_time()
    for offset in range(0, len(music), step):
        mixer.mix(offset // size, music[offset : offset + step])
    return (time.process_time() - begun) * 1000 / seconds


def main() -> None:
    figures = {
        "mix_1s_chunks_ms_per_s": statistics.median(
            cost_ms(RATE, announcing=True) for _ in range(3)
        ),
        "mix_100ms_chunks_ms_per_s": statistics.median(
            cost_ms(RATE // 10, announcing=True) for _ in range(3)
        ),
        "passthrough_ms_per_s": statistics.median(
            cost_ms(RATE, announcing=False) for _ in range(3)
        ),
        "hires_mix_1s_chunks_ms_per_s": statistics.median(
            cost_ms(HIRES.rate, announcing=True, pcm_format=HIRES) for _ in range(3)
        ),
    }
    for name, value in figures.items():
        print(f"{name}: {value:.2f}")
    print(json.dumps({"benchmark": "announce_mix", **{k: round(v, 3) for k, v in figures.items()}}))


if __name__ == "__main__":
    main()
