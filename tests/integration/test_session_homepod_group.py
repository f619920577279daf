"""A StreamSession group with a standalone HomePod (its own clock, 1.5 s off and +40 ppm), an
AirPlay 2 receiver following our grandmaster and a RAOP receiver: one timeline for all. The
HomePod's anchors are translated onto its clock, the others keep ours; the same input samples
play within a frame of each other on all three, at the start and 3 s in.

The session runs inside the sender's namespace (with the RAOP emulator on its loopback): this
module is also its driver (``python -m tests.integration.test_session_homepod_group ...``),
printing a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from airplay_provider.protocol.streamer_status import ClockStatus, Timing
from airplay_provider.protocol.txt import StreamingProtocol
from airplay_provider.session import StreamSession
from airplay_provider.session.processes import StreamTarget
from tests.audio import assert_audio_delivered, test_signal
from tests.group_helpers import flow_source
from tests.integration.test_cliap2_homepod import (
    HOMEPOD_TXT,
    RATE,
    _heard_segment,
    _homepod_sample_ns,
)
from tests.integration.test_cliap2_ptp import FRAME_NS, _segment
from tests.receivers.ap2_segment import ntp_to_unix_ns
from tests.receivers.netns_driver import receiver_end, run_session
from tests.receivers.raop_emulator import RaopEmulator

pytestmark = pytest.mark.netns
SIGNAL_SEED = 41
SIGNAL_S = 4.0
CHECKED = (0, 3 * RATE)  # input samples compared across the members


def _txt(text: str) -> dict[str, str]:
    return dict(item.strip('"').split("=", 1) for item in text.split())


async def drive(homepod: tuple[str, int], follower: tuple[str, int]) -> dict[str, object]:
    """Play the signal to the three members; the RAOP member's schedule and the AP2 clocks."""
    signal = test_signal(SIGNAL_S, seed=SIGNAL_SEED)
    session = StreamSession(flow_source(signal))
    async with RaopEmulator() as raop:
        targets = [
            StreamTarget(
                name=name,
                host=host,
                port=port,
                protocol=protocol,
                latency_ms=250,
                txt=txt,
                player_id=name,
            )
            for name, host, port, protocol, txt in (
                ("homepod", *homepod, StreamingProtocol.AIRPLAY2, _txt(HOMEPOD_TXT)),
                ("follower", *follower, StreamingProtocol.AIRPLAY2, {"model": "Test"}),
                ("raop", "127.0.0.1", raop.port, StreamingProtocol.RAOP, {}),
            )
        ]
        try:
            report = await session.start(targets)
            ended = await session.wait_ended(30)
        finally:
            await session.stop()
        comparison = assert_audio_delivered(
            raop.stream.reconstructed_pcm(), signal, tolerance_lsb=0
        )
        first = raop.stream.audio_packets[0].rtptime
        raop_unix = [
            ntp_to_unix_ns(
                raop.stream.play_time_ntp((first + comparison.offset_frames + k) & 0xFFFFFFFF)
            )
            for k in CHECKED
        ]
        raop_errors = list(raop.errors)
    members: dict[str, dict[str, object]] = {}
    for member in session.departed:
        timing = member.streamer.last(Timing)
        members[member.key] = {
            "ptp_minus_mono_ns": timing.ptp_minus_mono_ns if timing else None,
            "reason": timing.reason if timing else None,
            "clock": [e.state for _, e in member.streamer.statuses if isinstance(e, ClockStatus)],
        }
    return {
        "failed": [join.error for join in report.failed],
        "ended": ended,
        "raop_unix_ns": raop_unix,
        "raop_errors": raop_errors,
        "members": members,
        "wall_minus_mono_ns": time.time_ns() - time.monotonic_ns(),
    }


async def test_homepod_ptp_follower_and_raop_play_each_frame_together(tmp_path: Path) -> None:
    signal = test_signal(SIGNAL_S, seed=SIGNAL_SEED)
    homepod = ["--homepod-clock=1500,40"]
    sent, reports = await run_session(
        tmp_path, "tests.integration.test_session_homepod_group", [homepod, []], timeout_s=60
    )
    _check(sent, reports, signal)


def _check(sent: dict[str, Any], reports: list[dict[str, Any]], signal: bytes) -> None:
    assert sent["failed"] == []
    assert sent["ended"] is True
    assert sent["raop_errors"] == []
    assert [report["errors"] for report in reports] == [[], []]
    members = sent["members"]
    assert members["homepod"]["reason"] == "receiver_clock"
    assert "tracking" in members["homepod"]["clock"]
    assert members["follower"]["clock"][-1] == "ready"
    ptp_minus_mono = int(members["follower"]["ptp_minus_mono_ns"])
    assert int(members["homepod"]["ptp_minus_mono_ns"]) == ptp_minus_mono  # one grandmaster
    homepod, follower = reports
    segment = _segment({"segments": [_heard_segment(follower)]})
    assert segment.first_rtp is not None
    comparison = assert_audio_delivered(segment.pcm(), signal, tolerance_lsb=0)
    wall_minus_mono = int(sent["wall_minus_mono_ns"])
    for index, k in enumerate(CHECKED):
        rtp = (segment.first_rtp + comparison.offset_frames + k) & 0xFFFFFFFF
        on_follower = segment.scheduled_ns(rtp)  # our PTP timeline
        on_homepod = _homepod_sample_ns(homepod, signal, ptp_minus_mono, k)
        on_raop = sent["raop_unix_ns"][index] - wall_minus_mono + ptp_minus_mono
        assert abs(on_homepod - on_follower) <= FRAME_NS, (k, on_homepod - on_follower)
        assert abs(on_raop - on_follower) <= FRAME_NS, (k, on_raop - on_follower)


def main() -> int:
    """The driver (runs inside the sender's namespace)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("homepod", help="ADDRESS:PORT")
    parser.add_argument("follower", help="ADDRESS:PORT")
    args = parser.parse_args()
    ends = receiver_end(args.homepod), receiver_end(args.follower)
    print(json.dumps(asyncio.run(drive(*ends))), flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    sys.exit(main())
