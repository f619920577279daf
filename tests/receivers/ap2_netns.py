"""Test hosts in network namespaces (PTP needs UDP 319/320 on both sides) + a receiver runner.

`netns_hosts(n)` creates one sender namespace and `n` receiver namespaces joined by a bridge in
the sender namespace, with addresses 10.209.0.x that exist only inside them; everything is
deleted afterwards, also on failure. Real interfaces are never touched. Run a receiver inside
one with `python -m tests.receivers.ap2_netns ADDRESS --ptp --out FILE`: it prints
`READY <port>`, serves until the sender tears the session down (or a timeout), then writes a
JSON report and the received audio of every segment next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.receivers.ap2_emulator_core import FEATURES
from tests.receivers.ap2_ptp_own import OwnClock
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_segment import Segment

SUBNET = "10.209.0"


@dataclass(frozen=True)
class NetnsHosts:
    """The namespaces of one test: the sender's and one per receiver."""

    sender: str
    sender_ip: str
    receivers: list[tuple[str, str]]  # (namespace, address)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _ns(name: str, *args: str) -> None:
    _ip("netns", "exec", name, *args)


@contextmanager
def netns_hosts(receivers: int = 1) -> Iterator[NetnsHosts]:
    """Create the namespaces, or skip the test with the reason when that is not permitted."""
    tag = uuid.uuid4().hex[:6]
    sender = f"h9s{tag}"
    names = [sender] + [f"h9r{index}{tag}" for index in range(receivers)]
    created: list[str] = []
    try:
        for name in names:
            try:
                _ip("netns", "add", name)
            except (subprocess.CalledProcessError, FileNotFoundError) as exc:
                pytest.skip(f"cannot create network namespaces (ip netns add): {exc}")
            created.append(name)
            _ns(name, "ip", "link", "set", "lo", "up")
        _ns(sender, "ip", "link", "add", "br0", "type", "bridge")
        _ns(sender, "ip", "addr", "add", f"{SUBNET}.1/24", "dev", "br0")
        _ns(sender, "ip", "link", "set", "br0", "up")
        hosts = []
        for index, name in enumerate(names[1:]):
            _ns(
                sender,
                "ip",
                "link",
                "add",
                f"v{index}",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                name,
            )
            _ns(sender, "ip", "link", "set", f"v{index}", "master", "br0", "up")
            address = f"{SUBNET}.{index + 2}"
            _ns(name, "ip", "addr", "add", f"{address}/24", "dev", "eth0")
            _ns(name, "ip", "link", "set", "eth0", "up")
            hosts.append((name, address))
        yield NetnsHosts(sender, f"{SUBNET}.1", hosts)
    finally:
        for name in created:  # anything still running in our own namespaces was started by us
            pids = subprocess.run(
                ["ip", "netns", "pids", name],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(
                ["ip", "netns", "del", name], capture_output=True, timeout=10, check=False
            )


def in_netns(name: str, argv: list[str]) -> list[str]:
    """The command line running `argv` inside namespace `name`."""
    return ["ip", "netns", "exec", name, *argv]


# ---- the receiver runner (runs inside a namespace) -------------------------------------------


BUFFERED_DEVICE: dict[str, Any] = {"features": FEATURES | (1 << 40), "model": "Speaker1,1"}


def _print_schedule(receiver: Ap2Receiver, segments: Sequence[Segment]) -> None:
    """`SCHED {...}`: the latest anchor (RTP frame, its play time on the sender's timeline: NTP
    wall-clock ns, or PTP ns of our grandmaster) and, on PTP, the wall-clock instant the
    receiver plays that frame by its own servo (its local clock may run `--clock-ppm` fast),
    for a long run's drift figures."""
    anchored = [segment for segment in segments if segment.anchors]
    if not anchored:
        return
    anchor = anchored[-1].anchors[-1]
    offset = receiver.slave.offset_at(receiver.ptp_local_ns())
    played = None
    if receiver.ptp and offset is not None:
        played = receiver.wall_of_ptp_local(anchor.remote_ns - offset)
    line = {
        "wall_ns": time.time_ns(),
        "segment": anchored[-1].index,
        "anchor": [anchor.rtp, anchor.remote_ns],
        "receiver_wall_ns": played,
    }
    print("SCHED " + json.dumps(line), flush=True)


async def _serve(args: argparse.Namespace) -> dict[str, object]:
    options: dict[str, object] = {"drop_rate": args.drop_rate, "drop_seed": 7}
    if args.ptp_only:  # as shairport-sync: an NTP SETUP is refused
        options["timing_modes"] = ("PTP",)
    device: dict[str, Any] = BUFFERED_DEVICE if args.buffered else {}
    homepod = None
    if args.homepod_clock:  # "OFFSET_MS,DRIFT_PPM": a standalone HomePod's own clock
        offset_ms, drift_ppm = (float(part) for part in args.homepod_clock.split(","))
        homepod = OwnClock(round(offset_ms * 1e6), round(drift_ppm * 1000), time.time_ns())
    async with Ap2Receiver(
        args.address,
        ptp=args.ptp,
        ptp_probe_after_s=args.probe_after,
        ptp_silent=args.silent_ptp,
        ptp_own_clock=args.own_clock,
        ptp_clock_ppm=args.clock_ppm,
        homepod_clock=homepod,
        session_options=options,
        **device,
    ) as receiver:
        # The errors travel back to the test in the report (it checks them), so the runner
        # itself does not fail on them.
        receiver.expect_error("")
        print(f"READY {receiver.port}", flush=True)
        session = receiver.session
        assert session is not None
        deadline = time.monotonic() + args.timeout
        every = args.report_every
        report_at = time.monotonic() + every if every else None
        while time.monotonic() < deadline and session.teardowns.count("session") < args.sessions:
            await asyncio.sleep(0.05)
            if report_at is not None and time.monotonic() >= report_at:
                report_at += every
                _print_schedule(receiver, session.segments)
        out = Path(args.out)
        segments = []
        for segment in session.segments:
            pcm_path = out.with_suffix(f".seg{segment.index}.pcm")
            if not args.no_audio:
                pcm_path.write_bytes(segment.pcm())
            segments.append(
                {
                    "pcm": str(pcm_path),
                    "first_rtp": segment.first_rtp,
                    "flush_rtp": segment.flush_rtp,
                    "anchor": [segment.anchors[-1].rtp, segment.anchors[-1].remote_ns]
                    if segment.anchors
                    else None,
                    "anchor_spread_ns": segment.anchor_spread_ns(),
                    "missing_frames": segment.missing_frames(),
                }
            )
        slave = receiver.slave
        buffered = session.buffered
        shift = slave.offset_ns or 0
        if receiver.own_master is not None:  # a HomePod: anchors are on its own clock
            now = time.time_ns()
            shift = receiver.own_master.clock.own(now) - now
        return {
            "stream_types": session.stream_types,
            "buffered": {
                "anchor_refusals": buffered.anchor_refusals,
                "rates": buffered.rates,
                "late_frames": [
                    buffered.late_frames(segment, remote_minus_local_ns=shift)
                    for segment in session.segments
                ],
            }
            if buffered is not None
            else None,
            "errors": list(session.errors),
            "timing": session.timing,
            "teardowns": session.teardowns,
            "segments": segments,
            "event_replies": receiver.event_replies,
            "peers": session.peers,
            "dropped": session.dropped,
            "resent_received": session.resent_received,
            "unhealed": session.unhealed,
            "feedbacks": session.feedbacks,
            "homepod": None
            if receiver.own_master is None
            else {
                "clock_id": receiver.own_master.clock_id,
                "clock": receiver.own_master.clock.to_wire(),
                "syncs_sent": receiver.own_master.syncs_sent,
                "delay_resps": receiver.own_master.delay_resps,
                "anchors": session.ptp_anchors,
                "probes_sent": slave.first_probe_local is not None,
            },
            "ptp": {
                "master": slave.master,
                "syncs": slave.syncs,
                "announces": slave.announces,
                "offset_ns": slave.offset_ns,
                "first_sync_local": slave.first_sync_local,  # wall-clock ns
                "first_probe_local": slave.first_probe_local,  # wall-clock ns (Delay_Req)
                "session_setups": session.session_setups,
                "lock_s": (slave.locked_at_local - slave.first_sync_local) / 1e9
                if slave.locked_at_local and slave.first_sync_local
                else None,
                "local_wall_minus_mono_ns": time.time_ns() - time.monotonic_ns(),
            },
        }


def main() -> int:
    """Run one receiver (see the module docstring)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("--ptp", action="store_true")
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--buffered", action="store_true", help="offer type 103 (bit 40)")
    parser.add_argument("--probe-after", type=float, default=0.0, help="first Delay_Req delay")
    parser.add_argument("--silent-ptp", action="store_true", help="advertise PTP, never probe")
    parser.add_argument("--sessions", type=int, default=1, help="session TEARDOWNs to serve")
    parser.add_argument("--ptp-only", action="store_true", help="refuse NTP timing (400)")
    parser.add_argument("--own-clock", action="store_true", help="announce our own clock only")
    parser.add_argument(
        "--report-every", type=float, default=0.0, help="print the latest anchor every N s"
    )
    parser.add_argument("--no-audio", action="store_true", help="write no audio files")
    parser.add_argument("--clock-ppm", type=float, default=0.0, help="PTP local clock rate error")
    parser.add_argument(
        "--homepod-clock", default="", help="OFFSET_MS,DRIFT_PPM: a standalone HomePod's clock"
    )
    args = parser.parse_args()
    report = asyncio.run(_serve(args))
    Path(args.out).write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    sys.exit(main())
