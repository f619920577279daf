"""`bin/cliap2` and a receiver that keeps its own PTP clock (a standalone HomePod on OS 27).

The emulated HomePod (namespace of its own, `--homepod-clock OFFSET_MS,DRIFT_PPM`) runs a free
clock seconds away from ours that drifts +40 ppm, never follows our grandmaster, and streams its
Sync once we stop offering ours. It interprets every anchor on its clock and reports them; the
test turns them back into our PTP timeline with the clock's known truth, so a sender that does
not follow (offset) or follows without the rate (40 ppm = 18 frames over 10 s) fails.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.audio import assert_audio_delivered, test_signal
from tests.integration.test_cliap2_ptp import FRAME_NS, _segment
from tests.receivers.ap2_netns import netns_hosts
from tests.receivers.ap2_ptp_own import OwnClock
from tests.receivers.ap2_sender import Cliap2, ntp_in
from tests.receivers.netns_driver import DAEMON_ENV, netns_receiver

pytestmark = pytest.mark.netns
HOMEPOD_TXT = '"model=AudioAccessory5,1" "igl=1" "gid=5F0E2A" '
RATE = 44100


def _heard_segment(report: dict[str, Any]) -> dict[str, Any]:
    """The one segment that got audio (a session holds a member in an empty one first)."""
    heard = [s for s in report["segments"] if s["first_rtp"] is not None]
    assert len(heard) == 1, report["segments"]
    segment: dict[str, Any] = heard[0]
    return segment


async def stream_to_homepod(
    tmp: Path,
    signal: bytes,
    extra: Sequence[str],
    *,
    buffered: bool = False,
    wait_s: float = 30,
    check: bool = True,
) -> tuple[dict[str, Any], int, Cliap2, int]:
    """cliap2 (PTP, the HomePod's TXT) plays `signal` from 3 s on to one emulated receiver (with
    `extra` options) in a namespace: its report, the start (Unix ns), the run and its exit code
    (with `check`, 0 or the test fails with cliap2's output)."""
    with netns_hosts(1) as hosts:
        namespace, address = hosts.receivers[0]
        out = tmp / "rx.json"
        async with netns_receiver(namespace, address, out, extra=extra, buffered=buffered) as (
            port,
            _,
        ):
            start_unix, start_ntp = ntp_in(3.0)  # connect + its clock locked (1 s of Syncs)
            run = await Cliap2.start(
                address=address,
                port=port,
                ntpstart=start_ntp,
                netns=hosts.sender,
                env=DAEMON_ENV,
                txt=HOMEPOD_TXT,
            )
            await run.feed(signal)
            code = await run.finish(wait_s=wait_s)
            if check:
                assert code == 0, run.text()
        report = json.loads(out.read_text())
    return report, start_unix, run, code


def _schedule_errors(
    report: dict[str, Any], sent: bytes, start_unix: int, ptp_minus_mono_ns: int
) -> list[float]:
    """For every anchor on the HomePod's clock: when it plays sample k (k = the anchored frame,
    and the frame 0.125 s later, when the next anchor is due) on our PTP timeline, minus when
    sample k is due there (`--ntpstart` + k / 44100); in frames. Only the samples it governs
    that are heard count (from sample 0 on)."""
    homepod = report["homepod"]
    clock = OwnClock(**homepod["clock"])
    segment = _heard_segment(report)
    comparison = assert_audio_delivered(Path(segment["pcm"]).read_bytes(), sent, tolerance_lsb=0)
    rtp0 = (segment["first_rtp"] + comparison.offset_frames) & 0xFFFFFFFF  # input sample 0
    wall_minus_mono = report["ptp"]["local_wall_minus_mono_ns"]
    start_ptp = start_unix - wall_minus_mono + ptp_minus_mono_ns
    errors = []
    for rtp, own_ns, clock_id, _arrived in homepod["anchors"]:
        if clock_id != homepod["clock_id"]:
            continue
        first = ((rtp - rtp0 + 2**31) & 0xFFFFFFFF) - 2**31  # signed: before sample 0 too
        if first + RATE // 8 < 0:
            continue  # replaced before sample 0: it never governs a sound
        for k in (max(first, 0), first + RATE // 8):
            ahead = k - first
            plays_own = own_ns + ahead * 10**9 // RATE
            plays_ptp = clock.local(plays_own) - wall_minus_mono + ptp_minus_mono_ns
            errors.append((plays_ptp - (start_ptp + k * 10**9 / RATE)) / FRAME_NS)
    return errors


async def test_a_standalone_homepod_plays_on_its_own_drifting_clock_within_a_frame(
    tmp_path: Path,
) -> None:
    signal = test_signal(8.0, seed=31)
    report, start_unix, run, _ = await stream_to_homepod(
        tmp_path, signal, ["--homepod-clock=-4321.5,40"]
    )
    timing = run.status("timing")[0]
    assert timing["protocol"] == "ptp"
    assert timing["reason"] == "receiver_clock"  # known from the TXT
    assert report["errors"] == []
    homepod = report["homepod"]
    assert report["ptp"]["syncs"] == 0  # we never offered it our clock
    assert not homepod["probes_sent"]  # and it never followed anyone
    assert homepod["syncs_sent"] >= 8 * 8  # its own Sync stream, 8 Hz
    assert homepod["delay_resps"] >= 30  # our Delay_Req, answered on its clock
    states = [fields["state"] for fields in run.status("clock")]
    assert states[:2] == ["locking", "tracking"], states
    tracking = run.status("clock")[-1]  # the drift is reported again once it is measured
    assert tracking["state"] == "tracking"
    assert abs(int(tracking["drift_ppb"]) - 40_000) < 8_000  # re-reported on 5 ppm moves
    assert abs(int(tracking["offset_us"]) + 4_321_500) < 1_000
    own_anchors = [a for a in homepod["anchors"] if a[2] == homepod["clock_id"]]
    assert len(own_anchors) >= 56  # eight a second once tracking, through the 8 s
    errors = _schedule_errors(report, signal, start_unix, int(timing["ptp_minus_mono_ns"]))
    assert len(errors) >= 2 * 56  # the anchors through the 8 s of audio
    assert max(abs(error) for error in errors) <= 1.0, errors


def _homepod_sample_ns(
    report: dict[str, Any], sent: bytes, ptp_minus_mono_ns: int, k: int
) -> float:
    """When the HomePod plays input sample `k` on our PTP timeline, by the anchor (on its
    clock) in force then: the latest one it received before."""
    homepod = report["homepod"]
    clock = OwnClock(**homepod["clock"])
    segment = _heard_segment(report)
    comparison = assert_audio_delivered(Path(segment["pcm"]).read_bytes(), sent, tolerance_lsb=0)
    rtp_k = (segment["first_rtp"] + comparison.offset_frames + k) & 0xFFFFFFFF
    wall_minus_mono = report["ptp"]["local_wall_minus_mono_ns"]
    own = [a for a in homepod["anchors"] if a[2] == homepod["clock_id"]]
    best: float | None = None
    for rtp, own_ns, _clock_id, arrived in own:
        delta = ((rtp_k - rtp + 2**31) & 0xFFFFFFFF) - 2**31
        plays_wall = clock.local(own_ns + delta * 10**9 // RATE)
        if arrived <= plays_wall:  # in force when the sample plays: the latest such anchor
            best = plays_wall - wall_minus_mono + ptp_minus_mono_ns
    assert best is not None, "no anchor on its clock before the sample played"
    return best


async def test_a_group_of_a_homepod_and_a_ptp_follower_plays_each_frame_together(
    tmp_path: Path,
) -> None:
    """One grandmaster: the PTP receiver follows it, the HomePod keeps its clock (offset and
    +40 ppm) and gets translated anchors; the same input samples play within a frame of each
    other on both, at the start and 5 s in."""
    signal = test_signal(6.0, seed=32)
    with netns_hosts(2) as hosts:
        (ns_h, ip_h), (ns_p, ip_p) = hosts.receivers
        out_h, out_p = tmp_path / "homepod.json", tmp_path / "ptp.json"
        async with (
            netns_receiver(ns_h, ip_h, out_h, extra=["--homepod-clock=2718.2,40"]) as (port_h, _),
            netns_receiver(ns_p, ip_p, out_p) as (port_p, _),
        ):
            start_unix, start_ntp = ntp_in(4.0)  # two cold streamers, one waits for its lock
            runs = [
                await Cliap2.start(
                    address=ip,
                    port=port,
                    ntpstart=start_ntp,
                    netns=hosts.sender,
                    env=DAEMON_ENV,
                    txt=txt,
                )
                for ip, port, txt in ((ip_h, port_h, HOMEPOD_TXT), (ip_p, port_p, '"model=Test" '))
            ]
            await asyncio.gather(*(run.feed(signal) for run in runs))
            assert [await run.finish(wait_s=30) for run in runs] == [0, 0]
    timings = [run.status("timing")[0] for run in runs]
    assert timings[0]["daemon_pid"] == timings[1]["daemon_pid"]  # one grandmaster
    assert [run.status("started")[0]["skipped_frames"] for run in runs] == ["0", "0"]
    assert [t.get("reason") for t in timings] == ["receiver_clock", None]
    assert [s["state"] for s in runs[1].status("clock")][-1] == "ready"  # follows ours
    reports = [json.loads(out.read_text()) for out in (out_h, out_p)]
    assert [report["errors"] for report in reports] == [[], []]
    assert reports[1]["ptp"]["master"] == int(timings[1]["clock_id"], 16)
    assert reports[0]["ptp"]["syncs"] == 0  # the HomePod was never offered our clock
    ptp_minus_mono = int(timings[0]["ptp_minus_mono_ns"])
    follower = reports[1]
    segment = _segment(follower)
    comparison = assert_audio_delivered(segment.pcm(), signal, tolerance_lsb=0)
    assert segment.first_rtp is not None
    for k in (0, 5 * RATE):
        on_follower = segment.scheduled_ns(
            (segment.first_rtp + comparison.offset_frames + k) & 0xFFFFFFFF
        )
        on_homepod = _homepod_sample_ns(reports[0], signal, ptp_minus_mono, k)
        assert abs(on_homepod - on_follower) <= FRAME_NS, (k, on_homepod - on_follower)
        due = start_unix - follower["ptp"]["local_wall_minus_mono_ns"] + ptp_minus_mono
        assert abs(on_follower - (due + k * 10**9 / RATE)) <= FRAME_NS


async def test_buffered_audio_to_a_standalone_homepod_is_reanchored_as_its_clock_drifts(
    tmp_path: Path,
) -> None:
    """Type 103 has no sync packets: one anchor would drift 40 ppm (14 frames over 8 s). cliap2
    anchors on the HomePod's clock once it is measured, and again whenever the drift reaches a
    frame; every anchor plays its samples within a frame of their due time, up to the next."""
    signal = test_signal(8.0, seed=33)
    report, start_unix, run, _ = await stream_to_homepod(
        tmp_path, signal, ["--homepod-clock=-1234.5,40"], buffered=True
    )
    timing = run.status("timing")[0]
    assert run.status("started")[0]["stream_type"] == "buffered"
    assert report["errors"] == []
    assert report["buffered"]["late_frames"] == [0]
    homepod = report["homepod"]
    anchors = homepod["anchors"]
    assert all(a[2] == homepod["clock_id"] for a in anchors)  # never one on our clock
    assert 8 <= len(anchors) <= 40  # re-anchored for the drift, not on every check
    errors = _buffered_errors(report, signal, start_unix, int(timing["ptp_minus_mono_ns"]))
    assert len(errors) >= 2 * 8  # 8 s of audio re-anchored every ~0.6 s
    assert max(abs(error) for error in errors) <= 1.0, errors


def _buffered_errors(
    report: dict[str, Any], sent: bytes, start_unix: int, ptp_minus_mono: int
) -> list[float]:
    """Per anchor in force while the audio plays, in frames: when the sample audible as it
    takes over (or as sample 0 plays) and as the next one does (or the last sample) plays on
    our PTP timeline, minus when that sample is due there. An anchor replaced before sample 0
    is due never governs a sound, so it is not counted."""
    homepod = report["homepod"]
    anchors = homepod["anchors"]
    wall_minus_mono = report["ptp"]["local_wall_minus_mono_ns"]
    clock = OwnClock(**homepod["clock"])
    segment = _heard_segment(report)
    comparison = assert_audio_delivered(Path(segment["pcm"]).read_bytes(), sent, tolerance_lsb=0)
    rtp0 = (segment["first_rtp"] + comparison.offset_frames) & 0xFFFFFFFF
    start_ptp = start_unix - wall_minus_mono + ptp_minus_mono
    last_wall = start_unix + len(sent) // 4 * 10**9 // RATE  # the last sample is due
    errors = []
    for index, (rtp, own_ns, _clock_id, arrived) in enumerate(anchors):
        until = anchors[index + 1][3] if index + 1 < len(anchors) else last_wall
        begin, end = max(arrived, start_unix), min(until, last_wall)
        if begin >= end:
            continue
        for at_wall in (begin, end):
            delta = (clock.own(at_wall) - own_ns) * RATE // 10**9
            k = ((rtp + delta - rtp0 + 2**31) & 0xFFFFFFFF) - 2**31
            plays_ptp = clock.local(own_ns + delta * 10**9 // RATE) - wall_minus_mono
            plays_ptp += ptp_minus_mono
            errors.append((plays_ptp - (start_ptp + k * 10**9 / RATE)) / FRAME_NS)
    return errors
