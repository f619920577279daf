"""A receiver killed mid-group, on loopback against RAOP emulators (tests/receivers): how fast
its member is seen as failed, and how well it rejoins. Prints the figures, then one JSON line.

- detection: from the kill (every socket of the emulator closed at once; or only its RTSP
  connection; or only its UDP ports) to the moment a session listener sees the member FAILED
  with `receiver_gone` — what the `play` progress line shows.
- rejoin: with the ladder shrunk to 0.2 s, the emulator back on the same port; from its return
  to `rejoined`, and the rejoined member's schedule error against the group timeline (frames).

Targets: detection < 1 s (each way), rejoin schedule error ≤ 1 frame.
Run: `.venv/bin/python benchmarks/dead_member.py [trials]` (noisy on a busy machine).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from airplay_provider.protocol.streamer_status import ErrorCode  # noqa: E402
from airplay_provider.session import StreamSession  # noqa: E402
from airplay_provider.session.member import MemberState  # noqa: E402
from airplay_provider.session.rejoin import RejoinState  # noqa: E402
from tests.audio import test_signal  # noqa: E402
from tests.group_helpers import flow_source, raop_target, schedule_error_frames, when  # noqa: E402
from tests.receivers.raop_emulator import RaopEmulator  # noqa: E402

KILLS = {"all": (True, True), "rtsp": (True, False), "udp": (False, True)}


def _failed(session: StreamSession) -> bool:
    return any(
        m.key == "b" and m.state is MemberState.FAILED and m.error_code == ErrorCode.RECEIVER_GONE
        for m in session.departed
    )


async def trial(kind: str, seed: int) -> dict[str, float]:
    """One 2-member session; kill b's emulator 1.5 s in, bring it back 0.5 s later."""
    loop = asyncio.get_running_loop()
    rtsp, udp = KILLS[kind]
    # b is killed and closed midway; leaving its block still checks what it recorded. With its
    # UDP side alive after the RTSP side died, the sender's packets reach a session that ended.
    late_audio = [] if udp else [r"audio packet outside RECORD", r"sync packet outside a session"]
    async with RaopEmulator() as emu_a, RaopEmulator(expect_errors=late_audio) as emu_b:
        session = StreamSession(
            flow_source(test_signal(7.0, seed=seed)), rejoin_delays_s=(0.2,) * 10
        )
        try:
            await session.start([raop_target("a", emu_a.port), raop_target("b", emu_b.port)])
            await asyncio.sleep(1.5)
            gone = when(session, lambda: _failed(session))
            killed = loop.time()
            emu_b.kill(rtsp=rtsp, udp=udp)
            await asyncio.wait_for(gone, 10)
            detect_s = loop.time() - killed
            await emu_b.close()
            await asyncio.sleep(0.5)
            async with RaopEmulator(port=emu_b.port) as emu_b2:
                back_at = loop.time()
                rejoin = session.rejoins["b"]
                await asyncio.wait_for(
                    when(session, lambda: rejoin.state is RejoinState.REJOINED), 10
                )
                rejoin_s = loop.time() - back_at
                member = session.members["b"]
                await asyncio.sleep(1.0)
                error = max(
                    abs(schedule_error_frames(emu_b2, member, member.offset + k * 44100 // 2))
                    for k in range(2)
                )
                await session.stop()
        finally:
            await session.stop()
            await emu_b.close()
    return {"detect_s": detect_s, "rejoin_s": rejoin_s, "rejoin_error_frames": error}


async def main(trials: int) -> None:
    results: dict[str, object] = {}
    for kind in KILLS:
        runs = [await trial(kind, seed) for seed in range(trials)]
        detect = [r["detect_s"] for r in runs]
        rejoin = [r["rejoin_s"] for r in runs]
        errors = [r["rejoin_error_frames"] for r in runs]
        print(
            f"kill {kind:4}: detected in median {statistics.median(detect):.3f} s, "
            f"max {max(detect):.3f} s; rejoined {statistics.median(rejoin):.2f} s after the "
            f"receiver came back (ladder 0.2 s), schedule error ≤ {max(errors):.2f} frames"
        )
        results[kind] = {
            "detect_median_s": round(statistics.median(detect), 3),
            "detect_max_s": round(max(detect), 3),
            "rejoin_median_s": round(statistics.median(rejoin), 3),
            "rejoin_error_max_frames": round(max(errors), 2),
        }
    print(json.dumps({"benchmark": "dead_member", "trials": trials, **results}))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
