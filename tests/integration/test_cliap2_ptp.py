"""`bin/cliap2` with PTP timing: sender and emulated receivers in network namespaces.

PTP needs UDP 319/320 on both sides, so each receiver gets its own namespace (created and
deleted by the test); the sender's namespace holds the shared grandmaster daemon.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.audio import assert_audio_delivered, test_signal
from tests.receivers.ap2_netns import netns_hosts
from tests.receivers.ap2_segment import Anchor, Segment
from tests.receivers.ap2_sender import Cliap2, ntp_in
from tests.receivers.netns_driver import DAEMON_ENV, netns_receiver

pytestmark = pytest.mark.netns
FRAME_NS = 1e9 / 44100


def _segment(report: dict[str, object]) -> Segment:
    segments = report["segments"]
    assert isinstance(segments, list)
    first = segments[0]
    rtp, remote_ns = first["anchor"]
    return Segment(
        0,
        first_rtp=first["first_rtp"],
        packets={0: Path(first["pcm"]).read_bytes()},
        anchors=[Anchor(rtp, remote_ns, True)],
    )


def _sample0_ptp_ns(segment: Segment, sent: bytes) -> float:
    comparison = assert_audio_delivered(segment.pcm(), sent, tolerance_lsb=0)
    assert segment.first_rtp is not None
    return segment.scheduled_ns((segment.first_rtp + comparison.offset_frames) & 0xFFFFFFFF)


def _expected_ptp_ns(start_unix: int, timing: dict[str, str]) -> float:
    """`--ntpstart` on the grandmaster's timeline (PTP = CLOCK_MONOTONIC + daemon offset)."""
    wall_minus_mono = time.time_ns() - time.monotonic_ns()
    return start_unix - wall_minus_mono + int(timing["ptp_minus_mono_ns"])


async def test_ten_seconds_over_ptp_bit_exact_on_time_with_loss(tmp_path: Path) -> None:
    signal = test_signal(10.0, seed=11)
    with netns_hosts(1) as hosts:
        namespace, address = hosts.receivers[0]
        out = tmp_path / "rx.json"
        async with netns_receiver(namespace, address, out, drop_rate=0.05) as (port, _):
            # a cold streamer, its PTP daemon and the receiver's lock, on a busy machine too
            start_unix, start_ntp = ntp_in(3.0)
            run = await Cliap2.start(
                address=address, port=port, ntpstart=start_ntp, netns=hosts.sender, env=DAEMON_ENV
            )
            await run.feed(signal)
            assert await run.finish(wait_s=30) == 0, run.text()
        report = json.loads(out.read_text())
        await asyncio.sleep(1.0)  # the daemon lingers 0.5 s after its last streamer
        leftover = await asyncio.create_subprocess_exec(
            "ip", "netns", "pids", hosts.sender, stdout=asyncio.subprocess.PIPE
        )
        pids = (await leftover.communicate())[0].split()
    timing = run.status("timing")[0]
    assert timing["protocol"] == "ptp"
    assert pids == []  # the grandmaster daemon ended by itself
    assert report["errors"] == []
    assert report["timing"] == "PTP"
    assert report["peers"] == [address, hosts.sender_ip]
    assert report["teardowns"] == ["stream", "session"]
    assert report["dropped"] > 20
    assert report["unhealed"] == []
    assert report["feedbacks"] >= 4
    segment = _segment(report)
    assert report["segments"][0]["anchor_spread_ns"] < FRAME_NS
    assert abs(_sample0_ptp_ns(segment, signal) - _expected_ptp_ns(start_unix, timing)) <= FRAME_NS
    ptp = report["ptp"]
    assert ptp["master"] == int(timing["clock_id"], 16)
    assert ptp["lock_s"] is not None
    assert ptp["lock_s"] < 2.0
    true_offset = int(timing["ptp_minus_mono_ns"]) - ptp["local_wall_minus_mono_ns"]
    assert abs(ptp["offset_ns"] - true_offset) < 500_000  # software timestamps over veth


async def test_group_over_ptp_shares_one_grandmaster_and_agrees(tmp_path: Path) -> None:
    signal = test_signal(1.5, seed=12)
    with netns_hosts(2) as hosts:
        (ns_a, ip_a), (ns_b, ip_b) = hosts.receivers
        out_a, out_b = tmp_path / "a.json", tmp_path / "b.json"
        async with (
            netns_receiver(ns_a, ip_a, out_a) as (port_a, _),
            netns_receiver(ns_b, ip_b, out_b) as (port_b, _),
        ):
            _, start_ntp = ntp_in(2.5)  # two cold streamers + PTP lock, one after the other
            runs = [
                await Cliap2.start(
                    address=ip, port=port, ntpstart=start_ntp, netns=hosts.sender, env=DAEMON_ENV
                )
                for ip, port in ((ip_a, port_a), (ip_b, port_b))
            ]
            await asyncio.gather(*(run.feed(signal) for run in runs))
            assert [await run.finish() for run in runs] == [0, 0]
    timings = [run.status("timing")[0] for run in runs]
    assert timings[0]["daemon_pid"] == timings[1]["daemon_pid"]
    assert timings[0]["clock_id"] == timings[1]["clock_id"]
    reports = [json.loads(out.read_text()) for out in (out_a, out_b)]
    assert [report["errors"] for report in reports] == [[], []]
    times = [_sample0_ptp_ns(_segment(report), signal) for report in reports]
    assert abs(times[0] - times[1]) <= FRAME_NS


async def test_buffered_over_ptp_anchors_on_the_grandmaster_and_plays_on_time(
    tmp_path: Path,
) -> None:
    """Type 103 with PTP: the receiver refuses the anchor until its slave has locked onto our
    grandmaster; then sample 0 plays at `--ntpstart` on the PTP timeline, nothing late."""
    signal = test_signal(3.0, seed=21)
    with netns_hosts(1) as hosts:
        namespace, address = hosts.receivers[0]
        out = tmp_path / "rx.json"
        async with netns_receiver(namespace, address, out, buffered=True) as (port, _):
            start_unix, start_ntp = ntp_in(3.5)
            run = await Cliap2.start(
                address=address, port=port, ntpstart=start_ntp, netns=hosts.sender, env=DAEMON_ENV
            )
            await run.feed(signal)
            assert await run.finish(wait_s=30) == 0, run.text()
        report = json.loads(out.read_text())
    timing = run.status("timing")[0]
    assert timing["protocol"] == "ptp"
    assert run.status("started")[0]["stream_type"] == "buffered"
    assert report["errors"] == []
    assert report["stream_types"] == [103]
    buffered = report["buffered"]
    assert buffered["anchor_refusals"] >= 1  # before the slave locked
    assert buffered["rates"] == [1]
    assert buffered["late_frames"] == [0]
    segment = _segment(report)
    assert abs(_sample0_ptp_ns(segment, signal) - _expected_ptp_ns(start_unix, timing)) <= FRAME_NS


def _receiver_firewall(namespace: str, *rule: str) -> None:
    subprocess.run(["ip", "netns", "exec", namespace, "iptables", *rule], check=True, timeout=10)


async def test_buffered_loses_nothing_with_5_percent_loss_and_a_3_second_blackout(
    tmp_path: Path,
) -> None:
    """The issue's field case on a link of our own: iptables in the receiver's namespace drops
    5 % of everything from the sender, and for 3 s mid-stream all of it."""
    signal = test_signal(8.0, seed=22)
    with netns_hosts(1) as hosts:
        namespace, address = hosts.receivers[0]
        lossy = ["INPUT", "-s", hosts.sender_ip, "-m", "statistic", "--mode", "random"]
        lossy += ["--probability", "0.05", "-j", "DROP"]
        _receiver_firewall(namespace, "-A", *lossy)
        out = tmp_path / "rx.json"
        async with netns_receiver(namespace, address, out, buffered=True) as (port, _):
            start_unix, start_ntp = ntp_in(3.5)
            run = await Cliap2.start(
                address=address, port=port, ntpstart=start_ntp, netns=hosts.sender, env=DAEMON_ENV
            )
            await run.feed(signal)
            async with asyncio.timeout(15.0):  # until the lead has grown past 4 s
                while not any(int(f["ms"]) >= 1500 for f in run.status("elapsed")):
                    await run.wait_status("elapsed")
                    await asyncio.sleep(0.1)
            blackout = ["INPUT", "-s", hosts.sender_ip, "-j", "DROP"]
            _receiver_firewall(namespace, "-I", *blackout)
            dark_from = time.monotonic()
            await asyncio.sleep(3.0)  # the blackout itself, not an assertion
            _receiver_firewall(namespace, "-D", *blackout)
            dark_s = time.monotonic() - dark_from
            assert await run.finish(wait_s=40) == 0, run.text()
        report = json.loads(out.read_text())
    timing = run.status("timing")[0]
    assert dark_s >= 3.0
    assert run.status("started")[0]["stream_type"] == "buffered"
    assert report["errors"] == []
    assert report["buffered"]["late_frames"] == [0]
    assert report["segments"][0]["missing_frames"] == 0
    segment = _segment(report)
    assert abs(_sample0_ptp_ns(segment, signal) - _expected_ptp_ns(start_unix, timing)) <= FRAME_NS
