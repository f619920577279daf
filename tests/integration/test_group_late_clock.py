"""A receiver that never answers our PTP clock does not hold its group's start: the group starts
when its other member is ready, and the silent one (a TV advertising PTP) joins late on NTP
timing, on the group timeline, bit-exact from its join point. Sender and emulated receivers in
network namespaces; the session runs inside the sender's namespace: this module is also its
driver (``python -m tests.integration.test_group_late_clock A:PORT B:PORT``), printing a JSON
line with the measured start (command -> first sample audible for the ready member).
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

from airplay_provider.protocol.ptp_readiness import PROBE_LOCK_S, STALL_S
from airplay_provider.protocol.streamer_status import ClockStatus, Connected, Timing
from airplay_provider.protocol.timing import unix_ns_from_ntp
from airplay_provider.session import StreamSession
from tests.audio import assert_audio_delivered, test_signal
from tests.group_helpers import ap2_target, flow_source
from tests.receivers.ap2_segment import RATE
from tests.receivers.netns_driver import receiver_end, run_session

pytestmark = pytest.mark.netns
SIGNAL_SEED = 29
SIGNAL_S = 9.0
FRAME_NS = 1e9 / RATE
SLOW_PROBE_S = 3.2  # silent still when the other is ready (~2.5 s): set aside, not waited for


async def drive(receivers: list[tuple[str, int]]) -> dict[str, object]:
    """Play the test signal to the receivers as one group; what the test checks."""
    session = StreamSession(flow_source(test_signal(SIGNAL_S, seed=SIGNAL_SEED)))
    targets = [ap2_target(f"rx{index}", port, host) for index, (host, port) in enumerate(receivers)]
    asked = time.time_ns()
    try:
        report = await session.start(targets)
        returned = time.time_ns()
        ended = await session.wait_ended(SIGNAL_S + 25)
    finally:
        await session.stop()
    members = []
    for member in session.departed:
        streamer = member.streamer
        connected, timing, started = streamer.last(Connected), streamer.last(Timing), member.started
        members.append(
            {
                "key": member.key,
                "timing": connected.timing if connected is not None else None,
                "ptp_minus_mono_ns": timing.ptp_minus_mono_ns if timing is not None else None,
                "clock": [e.state for _, e in streamer.statuses if isinstance(e, ClockStatus)],
                "late_reason": getattr(member, "late_reason", None),  # (an older checkout)
                "misaligned": member.misaligned,
                "offset": member.offset,
                "start_ntp": member.start_ntp,
                "first_frame": None if started is None else member.offset + started.first_sample,
                "actual_ntp": None if started is None else started.actual_ntp,
            }
        )
    return {
        "asked_unix_ns": asked,
        "returned_unix_ns": returned,
        "start_unix_ns": unix_ns_from_ntp(session.start_ntp),
        "wall_minus_mono_ns": time.time_ns() - time.monotonic_ns(),
        "ended": ended,
        "joins": [
            {"key": j.key, "error": j.error, "late": getattr(j, "late", None)}
            for j in report.members
        ],
        "members": members,
    }


async def run_group(
    tmp_path: Path, extras: list[list[str]], env: dict[str, str] | None = None
) -> tuple[dict[str, Any], list[Any]]:
    """Receivers with these emulator options in namespaces, the driver in the sender's (with
    `env` added to its environment)."""
    return await run_session(
        tmp_path, "tests.integration.test_group_late_clock", extras, timeout_s=60, env=env
    )


def heard(report: dict[str, Any]) -> dict[str, Any]:
    """The one segment of a receiver's report that carried audio."""
    segments = [s for s in report["segments"] if s["first_rtp"] is not None]
    assert len(segments) == 1
    segment: dict[str, Any] = segments[0]
    return segment


async def scheduled_unix_ns(
    segment: dict[str, Any], sent: bytes, member: dict[str, Any], wall_minus_mono: int
) -> float:
    """When the receiver plays `sent`'s first frame (wall-clock ns), checking it bit-exact."""
    pcm = await asyncio.to_thread(Path(segment["pcm"]).read_bytes)
    comparison = assert_audio_delivered(pcm, sent, tolerance_lsb=0)
    anchor_rtp, anchor_ns = segment["anchor"]
    rtp = (segment["first_rtp"] + comparison.offset_frames) & 0xFFFFFFFF
    delta = (rtp - anchor_rtp) & 0xFFFFFFFF
    delta -= 1 << 32 if delta >= 1 << 31 else 0
    at = anchor_ns + delta * 1e9 / RATE
    if member["timing"] == "ptp":  # the grandmaster's timeline: CLOCK_MONOTONIC + its offset
        at += wall_minus_mono - int(member["ptp_minus_mono_ns"])
    return float(at)


def _by_key(sent: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by_key: dict[str, list[dict[str, Any]]] = {}
    for member in sent["members"]:  # (in the order they departed: a first try, then its retry)
        by_key.setdefault(member["key"], []).append(member)
    return by_key


async def _assert_in_sync(
    sent: dict[str, Any], reports: list[dict[str, Any]], first: dict[str, Any], late: dict[str, Any]
) -> None:
    """The late member's first frame is the one the group plays at that instant, both receivers
    schedule it within a frame of each other and of T, and the audio is bit-exact from there."""
    signal = test_signal(SIGNAL_S, seed=SIGNAL_SEED)
    start_ns = int(sent["start_unix_ns"])
    assert late["misaligned"] is False
    frame = int(late["first_frame"])
    assert 0 < frame < len(signal) // 4 // 2
    assert unix_ns_from_ntp(int(late["actual_ntp"])) - start_ns == pytest.approx(
        frame * FRAME_NS, abs=FRAME_NS
    )
    shift = int(sent["wall_minus_mono_ns"])
    normal, joined = reports
    normal_at = await scheduled_unix_ns(heard(normal), signal[frame * 4 :], first, shift)
    late_at = await scheduled_unix_ns(heard(joined), signal[frame * 4 :], late, shift)
    assert abs(late_at - normal_at) <= FRAME_NS
    assert abs(late_at - (start_ns + frame * FRAME_NS)) <= FRAME_NS
    pcm = await asyncio.to_thread(Path(heard(normal)["pcm"]).read_bytes)
    assert_audio_delivered(pcm, signal, tolerance_lsb=0)  # the ready member: all of it


async def test_a_silent_member_joins_late_in_sync_without_holding_the_start(
    tmp_path: Path,
) -> None:
    sent, reports = await run_group(tmp_path, [[], ["--silent-ptp", "--sessions", "2"]])
    assert sent["ended"] is True
    # the group did not wait for the stall (5 s) and the NTP restart that followed it
    assert int(sent["start_unix_ns"]) - int(sent["asked_unix_ns"]) < STALL_S * 1e9
    by_key = _by_key(sent)
    (first,) = by_key["rx0"]
    assert first["timing"] == "ptp"
    assert first["clock"][-1] == "ready"
    assert first["late_reason"] is None
    assert first["first_frame"] == 0
    ptp_try, ntp_join = by_key["rx1"]
    assert ptp_try["clock"][-1] == "stalled"
    assert ptp_try["first_frame"] is None  # set aside: it never played on PTP
    assert ntp_join["timing"] == "ntp"
    assert ntp_join["late_reason"] == "its PTP clock stalled; on NTP timing"
    joins = {j["key"]: j for j in sent["joins"]}
    assert joins["rx1"]["error"] is None
    assert joins["rx1"]["late"] == "its PTP clock stalled; on NTP timing"
    assert [report["errors"] for report in reports] == [[], []]
    assert reports[1]["timing"] == "NTP"
    await _assert_in_sync(sent, reports, first, ntp_join)


async def test_a_slow_locking_member_joins_late_on_ptp_at_its_readiness(tmp_path: Path) -> None:
    # its first Delay_Req 3.2 s after it heard us: it said nothing when the normal one was ready
    sent, reports = await run_group(tmp_path, [[], ["--probe-after", str(SLOW_PROBE_S)]])
    assert sent["ended"] is True
    by_key = _by_key(sent)
    (first,), (late,) = by_key["rx0"], by_key["rx1"]
    assert late["timing"] == "ptp"
    assert late["clock"] == ["cold", "probing", "ready"]
    assert late["late_reason"] == "its PTP clock was cold when the others were ready"
    # T did not wait for it: it was due after its receiver's lock, on the same streamer
    first_probe = reports[1]["ptp"]["first_probe_local"]
    assert first_probe is not None
    start_ns = int(sent["start_unix_ns"])
    assert start_ns < first_probe + PROBE_LOCK_S * 1e9
    assert unix_ns_from_ntp(int(late["actual_ntp"])) >= first_probe + PROBE_LOCK_S * 1e9
    assert reports[1]["ptp"]["session_setups"] == 1
    assert [report["errors"] for report in reports] == [[], []]
    await _assert_in_sync(sent, reports, first, late)


def main() -> int:
    """The driver (runs inside the sender's namespace)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("receivers", nargs="+", help="ADDRESS:PORT of each receiver")
    args = parser.parse_args()
    receivers = [receiver_end(text) for text in args.receivers]
    result = asyncio.run(drive(receivers))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    sys.exit(main())
