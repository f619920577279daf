"""A StreamSession schedules an AirPlay 2 PTP member on its receiver's measured clock readiness,
sender and emulated receivers in network namespaces:

- a receiver slow to take our clock (first Delay_Req 2 s after it first heard us, later than
  the old fixed 1.5 s hold) gets its first frame only `PROBE_LOCK_S` after that first probe,
  and the audio arrives bit-exact;
- a TV that advertises PTP and never answers it is reported `stalled` after 5 s with the likely
  cause, and plays on NTP timing instead, bit-exact; one that refuses NTP too plays on PTP
  after all, on the fixed hold;
- a slow-locking late joiner starts at its readiness, exactly on the group timeline;
- a receiver seen keeping its own clock (a standalone HomePod) is followed, not put on NTP.

The session runs inside the sender's namespace: this module is also its driver
(``python -m tests.integration.test_session_ptp_readiness ADDRESS:PORT [LATE:PORT --late]``),
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

from airplay_provider.protocol.ptp_readiness import PROBE_LOCK_S, STALL_S
from airplay_provider.protocol.streamer_status import (
    ClockStatus,
    Connected,
    format_status,
    parse_status,
)
from airplay_provider.protocol.timing import unix_ns_from_ntp
from airplay_provider.session import StreamSession
from airplay_provider.session.timeline import PTP_SETTLE_S, member_start_ntp
from tests.audio import assert_audio_delivered, test_signal
from tests.group_helpers import ap2_target, flow_source
from tests.receivers.netns_driver import receiver_end, run_session

pytestmark = pytest.mark.netns
SIGNAL_SEED = 23
SIGNAL_S = 2.0
SLOW_PROBE_S = 2.0
LATE_SIGNAL_S = 9.0
JOIN_AFTER_S = 1.0
DRIVER = "tests.integration.test_session_ptp_readiness"


async def drive(address: str, port: int) -> dict[str, object]:
    """Play the test signal to one AirPlay 2 receiver in a session; what the tests check."""
    session = StreamSession(flow_source(test_signal(SIGNAL_S, seed=SIGNAL_SEED)))
    target = ap2_target("tv", port, address)
    try:
        report = await session.start([target])
        ended = await session.wait_ended(25)
    finally:
        await session.stop()
    attempts = []
    for member in session.departed:
        streamer = member.streamer
        connected = streamer.last(Connected)
        at = streamer.connected_at
        attempts.append(
            {
                "timing": connected.timing if connected is not None else None,
                "connected_unix_ns": None
                if at is None
                else time.time_ns() - round((time.monotonic() - at) * 1e9),
                "clock": [
                    format_status(event)
                    for _, event in streamer.statuses
                    if isinstance(event, ClockStatus)
                ],
            }
        )
    return {
        "failed": [join.error for join in report.failed],
        "ended": ended,
        "attempts": attempts,
        "start_unix_ns": unix_ns_from_ntp(session.start_ntp),
    }


async def drive_late(first: tuple[str, int], late: tuple[str, int]) -> dict[str, object]:
    """A session on `first`; `late` joins after JOIN_AFTER_S: where its start landed."""
    signal = test_signal(LATE_SIGNAL_S, seed=SIGNAL_SEED)
    session = StreamSession(flow_source(signal))
    targets = [
        ap2_target(name, port, host) for name, (host, port) in (("first", first), ("late", late))
    ]
    try:
        report = await session.start(targets[:1])
        await asyncio.sleep(JOIN_AFTER_S)
        asked = time.time_ns()
        join = await session.add_member(targets[1])
        ended = await session.wait_ended(LATE_SIGNAL_S + 20)
    finally:
        await session.stop()
    states = {
        member.key: [e.state for _, e in member.streamer.statuses if isinstance(e, ClockStatus)]
        for member in session.departed
    }
    return {
        "failed": [j.error for j in report.failed] + ([join.error] if join.error else []),
        "ended": ended,
        "states": states,
        "asked_unix_ns": asked,
        "group_start_ntp": session.start_ntp,
        "join_offset": join.offset,
        "join_start_ntp": join.start_ntp,
    }


async def _play(extra: list[str], tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    sent, (report,) = await run_session(tmp_path, DRIVER, [extra], timeout_s=50)
    return sent, report


async def _assert_bit_exact(report: dict[str, Any]) -> None:
    segments = report["segments"]
    assert isinstance(segments, list)
    heard = [s for s in segments if s["first_rtp"] is not None]
    assert len(heard) == 1
    pcm = await asyncio.to_thread(Path(heard[0]["pcm"]).read_bytes)
    assert_audio_delivered(pcm, test_signal(SIGNAL_S, seed=SIGNAL_SEED), tolerance_lsb=0)


def _states(attempt: dict[str, Any]) -> list[str]:
    lines = attempt["clock"]
    assert isinstance(lines, list)
    return [line.split("state=")[1].split()[0] for line in lines]


async def test_a_slow_locking_receiver_is_scheduled_on_its_readiness(tmp_path: Path) -> None:
    sent, report = await _play(["--probe-after", str(SLOW_PROBE_S)], tmp_path)
    assert sent["failed"] == []
    assert sent["ended"] is True
    (attempt,) = sent["attempts"]
    assert attempt["timing"] == "ptp"
    assert _states(attempt) == ["cold", "probing", "ready"]
    assert report["errors"] == []
    first_probe = report["ptp"]["first_probe_local"]
    assert first_probe is not None
    start_ns, connected_ns = int(sent["start_unix_ns"]), int(attempt["connected_unix_ns"])
    # the first frame is due only once the receiver's servo had PROBE_LOCK_S of probes: later
    # than the fixed hold would have put it (and than its first probe)
    assert start_ns >= first_probe + PROBE_LOCK_S * 1e9
    assert start_ns - connected_ns >= (SLOW_PROBE_S + PROBE_LOCK_S) * 1e9
    assert start_ns - connected_ns > (PTP_SETTLE_S + 1.0) * 1e9
    await _assert_bit_exact(report)


async def test_a_tv_that_never_answers_ptp_stalls_and_plays_on_ntp(tmp_path: Path) -> None:
    sent, report = await _play(["--silent-ptp", "--sessions", "2"], tmp_path)
    assert sent["failed"] == []
    assert sent["ended"] is True
    stalled, played = sent["attempts"]
    assert stalled["timing"] == "ptp"
    assert _states(stalled) == ["cold", "stalled"]
    event = parse_status(stalled["clock"][-1])
    assert isinstance(event, ClockStatus)
    assert event.cause is not None
    assert "319/320" in event.cause
    assert event.after_ms is not None
    assert event.after_ms >= STALL_S * 1000  # reported at 5 s, not before
    assert played["timing"] == "ntp"
    assert played["clock"] == []
    assert report["ptp"]["first_probe_local"] is None
    assert report["ptp"]["session_setups"] == 2
    assert report["timing"] == "NTP"
    assert report["errors"] == []
    await _assert_bit_exact(report)


async def test_a_receiver_keeping_its_own_clock_plays_on_ntp(tmp_path: Path) -> None:
    sent, report = await _play(["--own-clock", "--sessions", "2"], tmp_path)
    assert sent["failed"] == []
    assert sent["ended"] is True
    own, played = sent["attempts"]
    assert own["timing"] == "ptp"
    # its Announces are no awakening of ours; cliap2 tries to follow its clock, which never
    # comes (this receiver sends no Sync)
    assert _states(own) == ["cold", "locking", "own_clock"]
    event = parse_status(own["clock"][-1])
    assert isinstance(event, ClockStatus)
    assert event.cause is not None
    assert "own PTP clock" in event.cause
    assert played["timing"] == "ntp"
    assert report["ptp"]["first_probe_local"] is None
    assert report["timing"] == "NTP"
    assert report["errors"] == []
    await _assert_bit_exact(report)


async def test_a_homepod_seen_keeping_its_own_clock_is_followed_and_plays_on_it(
    tmp_path: Path,
) -> None:
    """No TXT hint: the receiver only announces its own clock (a HomePod on OS 27, 2 s off and
    +40 ppm); after `STALL_S` cliap2 follows that clock instead of restarting on NTP, and the
    session starts it once `tracking`: anchors on its clock, bit-exact."""
    sent, report = await _play(["--homepod-clock=2000,40"], tmp_path)
    assert sent["failed"] == []
    assert sent["ended"] is True
    (attempt,) = sent["attempts"]  # no second attempt on NTP
    assert attempt["timing"] == "ptp"
    assert _states(attempt)[:3] == ["cold", "locking", "tracking"]
    assert report["timing"] == "PTP"
    assert report["errors"] == []
    homepod = report["homepod"]
    assert homepod["anchors"]
    assert all(anchor[2] == homepod["clock_id"] for anchor in homepod["anchors"])
    assert not homepod["probes_sent"]
    await _assert_bit_exact(report)


async def test_a_silent_receiver_that_refuses_ntp_plays_on_ptp_after_all(tmp_path: Path) -> None:
    # (the refused attempt tears its session down too: three TEARDOWNs in all)
    sent, report = await _play(["--silent-ptp", "--ptp-only", "--sessions", "3"], tmp_path)
    assert sent["failed"] == []
    assert sent["ended"] is True
    stalled, refused, played = sent["attempts"]
    assert _states(stalled) == ["cold", "stalled"]
    assert refused["timing"] is None  # its SETUP got 400: never connected
    assert played["timing"] == "ptp"
    assert report["errors"] == ["SETUP refused: can not handle NTP streams"]
    assert report["ptp"]["session_setups"] == 2
    # held the fixed PTP_SETTLE_S (no second 5 s wait for a clock known to stay silent)
    start_ns, connected_ns = int(sent["start_unix_ns"]), int(played["connected_unix_ns"])
    assert PTP_SETTLE_S * 1e9 <= start_ns - connected_ns < STALL_S * 1e9
    await _assert_bit_exact(report)


async def test_a_late_joiner_starts_at_its_readiness_on_the_group_timeline(
    tmp_path: Path,
) -> None:
    signal = test_signal(LATE_SIGNAL_S, seed=SIGNAL_SEED)
    slow = ["--probe-after", str(SLOW_PROBE_S)]
    sent, (_, late) = await run_session(
        tmp_path, DRIVER, [[], slow], timeout_s=60, driver_args=["--late"]
    )
    assert sent["failed"] == []
    assert sent["ended"] is True
    assert sent["states"]["late"] == ["cold", "probing", "ready"]
    offset, join_ntp = int(sent["join_offset"]), int(sent["join_start_ntp"])
    # on the group timeline: its first frame plays exactly when the group plays that frame ...
    assert join_ntp == member_start_ntp(int(sent["group_start_ntp"]), offset, 0)
    # ... and only once its receiver's clock was ready (not JOIN_LEAD_S after it connected)
    first_probe = late["ptp"]["first_probe_local"]
    assert first_probe is not None
    assert unix_ns_from_ntp(join_ntp) >= first_probe + PROBE_LOCK_S * 1e9
    assert (
        unix_ns_from_ntp(join_ntp) - int(sent["asked_unix_ns"])
        >= (SLOW_PROBE_S + PROBE_LOCK_S) * 1e9
    )
    assert 0 < offset < len(signal) // 4
    heard = [s for s in late["segments"] if s["first_rtp"] is not None]
    assert len(heard) == 1
    pcm = await asyncio.to_thread(Path(heard[0]["pcm"]).read_bytes)
    assert_audio_delivered(pcm, signal[offset * 4 :], tolerance_lsb=0)


def main() -> int:
    """The driver (runs inside the sender's namespace)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("receivers", nargs="+", help="ADDRESS:PORT of each receiver")
    parser.add_argument("--late", action="store_true", help="the second receiver joins late")
    args = parser.parse_args()
    ends = [receiver_end(text) for text in args.receivers]
    if args.late:
        first, late = ends
        result = asyncio.run(drive_late(first, late))
    else:
        (end,) = ends
        result = asyncio.run(drive(*end))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    sys.exit(main())
