"""Drift over a long group session mixing PTP AirPlay 2, NTP AirPlay 2 and RAOP members: how far
apart the members schedule the same frame, sampled every N seconds. Prints per-minute figures,
then one JSON line.

Set-up (root): network namespaces (tests/receivers/ap2_netns.py): an AirPlay 2 emulator on PTP
and one on NTP timing in their own namespaces (they print their latest anchor every N s:
`--report-every`), the session and a RAOP emulator (in-process, on the namespace's loopback) in
the sender's namespace (the driver: this file with `--drive`). Every N s the driver takes the
frame audible now and the RAOP emulator's play time for it (its latest sync packet); the AP2
emulators' latest anchors give theirs: the NTP one on the sender's wall clock, the PTP one on our
grandmaster's timeline turned into the receiver's wall clock with the offset its own PTP servo
measured. spread = max - min over the three, in frames (1 frame = 22.7 us).

What it shows and what it does not: every emulator runs on this machine's clock, so a receiver
clock that runs fast or slow (as real ones do, ~10-50 ppm) is not simulated: the figures show
that the sender keeps the three timelines together for the whole run (the streamers' sync
packets and anchors, the grandmaster's CLOCK_MONOTONIC-based timeline against the NTP members'
wall clock, which an NTP-slewed host could pull apart, and the PTP servo's error over veth); not
that the receivers' own timing loops correct a drifting crystal (that needs an emulator clock
with a simulated rate error). `--ptp-ppm N` gives the PTP emulator such a clock (running N ppm
fast) and a servo that follows a rate (a line through its recent exchanges): its figure then
shows that our grandmaster keeps a drifting PTP receiver on the timeline; the NTP AP2 and RAOP
emulators have no such clock (their play times are taken on the sender's clock). CPU: the
driver (with the RAOP emulator), its streamers and the PTP daemon, % of one core.

    .venv/bin/python benchmarks/drift.py                       # 30 minutes, a sample every 10 s
    .venv/bin/python benchmarks/drift.py --minutes 2 --every 5 [--ptp-ppm 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

SELF = Path(__file__).resolve()
ROOT = SELF.parent.parent
sys.path[:0] = [str(ROOT)]

from airplay_provider.protocol.streamer_status import Connected, Playing, Timing  # noqa: E402
from airplay_provider.protocol.timing import unix_ns_from_ntp  # noqa: E402
from airplay_provider.session import StreamSession  # noqa: E402
from airplay_provider.session.timeline import position_at  # noqa: E402
from tests.audio import test_signal  # noqa: E402
from tests.group_helpers import ap2_target, play_ntp, raop_target, s16_to_f32  # noqa: E402
from tests.receivers.ap2_netns import in_netns, netns_hosts  # noqa: E402
from tests.receivers.raop_emulator import RaopEmulator  # noqa: E402

RATE = 44100
FRAME_NS = 1e9 / RATE
DAEMON_ENV = {"AIRPLAY_PTP_LINGER_S": "0.5"}
TICK = os.sysconf("SC_CLK_TCK")
PPM = [0.0]  # the PTP emulator's clock rate error (--ptp-ppm)


# ---- the driver (inside the sender's namespace) -----------------------------------------------


async def endless(seconds: float) -> AsyncIterator[bytes]:
    """`seconds` of a repeating 1 s test signal as flow PCM."""
    second = s16_to_f32(test_signal(1.0, seed=5))
    for _ in range(int(seconds)):
        yield second


def cpu_s(pids: set[int]) -> float:
    """utime + stime of these processes so far (seconds; gone ones count 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def emit(kind: str, payload: dict[str, Any]) -> None:
    print(f"{kind} {json.dumps(payload)}", flush=True)


async def drive(ap2: list[tuple[str, int]], minutes: float, every: float) -> None:
    """The group session; prints MAP (frame -> RTP per member), SAMPLE lines, DONE."""
    async with RaopEmulator(idle_timeout=600.0) as emu:
        targets = [
            ap2_target(name, port, host, timing=name)  # (the emulator advertises PTP either way)
            for name, (host, port) in zip(("ptp", "ntp"), ap2, strict=True)
        ]
        targets.append(raop_target("raop", emu.port))
        session = StreamSession(endless(minutes * 60 + 5))
        try:
            await session.start(targets)
            mapping: dict[str, Any] = {}
            pids = {os.getpid()}
            end = time.monotonic() + minutes * 60
            while time.monotonic() < end and session.active_members:
                await asyncio.sleep(every)
                current = {}
                for member in session.members.values():
                    playing, timing = member.streamer.last(Playing), member.streamer.last(Timing)
                    connected = member.streamer.last(Connected)
                    pids.update(member.pids)
                    if timing is not None and timing.daemon_pid:
                        pids.add(timing.daemon_pid)
                    if playing is not None:
                        current[member.key] = {
                            "rtptime": playing.rtptime,
                            "first_sample": playing.first_sample,
                            "offset": member.offset,
                            "timing": (connected.timing if connected else None) or "raop",
                            "misaligned": member.misaligned,
                        }
                if current != mapping:
                    mapping = current
                    emit("MAP", mapping)
                frame = position_at(session.clock.ntp(), session.start_ntp)
                raop, ptp = session.members.get("raop"), session.members.get("ptp")
                daemon = ptp.streamer.last(Timing) if ptp is not None else None
                emit(
                    "SAMPLE",
                    {
                        "wall_ns": time.time_ns(),
                        "frame": frame,
                        "raop_ns": None
                        if raop is None
                        else unix_ns_from_ntp(play_ntp(emu, raop, frame)),
                        # our grandmaster's timeline minus the wall clock, now
                        "ptp_minus_wall_ns": None
                        if daemon is None or daemon.ptp_minus_mono_ns is None
                        else daemon.ptp_minus_mono_ns - (time.time_ns() - time.monotonic_ns()),
                        "cpu_s": cpu_s(pids),
                        "members": sorted(session.members),
                    },
                )
        finally:
            await session.stop()
        emit("DONE", {"departed": [[m.key, m.state.value, m.error] for m in session.departed]})


# ---- the benchmark (outside) -------------------------------------------------------------------


def instant_ns(
    sched: dict[str, Any], member: dict[str, Any], frame: int, offset: float | None = None
) -> float:
    """When an AP2 emulator plays session `frame` on the wall clock, from its latest anchor: on
    the sender's timeline (a PTP one minus our grandmaster-minus-wall `offset`), or without
    `offset` as the receiver itself plays it (a PTP one by its own servo and clock)."""
    rtp = (member["rtptime"] + frame - member["offset"] - member["first_sample"]) & 0xFFFFFFFF
    anchor_rtp, anchor_ns = sched["anchor"]
    delta = (rtp - anchor_rtp) & 0xFFFFFFFF
    delta -= 1 << 32 if delta >= 1 << 31 else 0
    if member["timing"] != "ptp":
        return float(anchor_ns + delta * FRAME_NS)
    if offset is not None:
        return float(anchor_ns - offset + delta * FRAME_NS)
    # the receiver's local clock runs at its own rate: a frame lasts 1/44100 s of it
    played: float = float(sched["receiver_wall_ns"]) + delta * FRAME_NS / (1 + PPM[0] / 1e6)
    return played


async def lines(stream: asyncio.StreamReader, sink: dict[str, Any], key: str) -> None:
    """Keep the latest `SCHED` report of a receiver runner in `sink[key]`."""
    while raw := await stream.readline():
        text = raw.decode()
        if text.startswith("SCHED "):
            sink[key] = json.loads(text[6:])


async def measure(minutes: float, every: float) -> dict[str, Any]:
    """Run the set-up; the figures."""
    samples: list[dict[str, Any]] = []
    scheds: dict[str, Any] = {}
    mapping: dict[str, Any] = {}
    done: dict[str, Any] = {}
    with netns_hosts(2) as hosts, tempfile.TemporaryDirectory(prefix="drift-") as tmp:
        runners = []
        for (namespace, address), ptp in zip(hosts.receivers, (True, False), strict=True):
            argv = [sys.executable, "-m", "tests.receivers.ap2_netns", address, "--no-audio"]
            argv += ["--out", f"{tmp}/{namespace}.json", "--timeout", str(minutes * 60 + 90)]
            argv += ["--report-every", str(every / 2)]
            argv += ["--ptp", "--clock-ppm", str(PPM[0])] if ptp else []
            runners.append(
                await asyncio.create_subprocess_exec(
                    *in_netns(namespace, argv), stdout=asyncio.subprocess.PIPE, cwd=ROOT
                )
            )
        readers: list[asyncio.Task[None]] = []
        driver = None
        try:
            ports = []
            for runner in runners:
                assert runner.stdout is not None
                ready = await asyncio.wait_for(runner.stdout.readline(), 15)
                ports.append(int(ready.split()[1]))
            for runner, key in zip(runners, ("ptp", "ntp"), strict=True):
                assert runner.stdout is not None
                readers.append(asyncio.create_task(lines(runner.stdout, scheds, key)))
            argv = [sys.executable, str(SELF), "--drive"]
            argv += [f"{a}:{p}" for (_, a), p in zip(hosts.receivers, ports, strict=True)]
            argv += ["--minutes", str(minutes), "--every", str(every)]
            driver = await asyncio.create_subprocess_exec(
                *in_netns(hosts.sender, argv),
                stdout=asyncio.subprocess.PIPE,
                cwd=ROOT,
                env={**os.environ, **DAEMON_ENV},
            )
            assert driver.stdout is not None
            started = time.monotonic()
            while raw := await asyncio.wait_for(driver.stdout.readline(), every + 60):
                kind, _, body = raw.decode().partition(" ")
                payload = json.loads(body)
                if kind == "MAP":
                    mapping = payload
                elif kind == "DONE":
                    done = payload
                elif kind == "SAMPLE" and len(mapping) == 3 and len(scheds) == 2:
                    samples.append(sample(payload, scheds, mapping, time.monotonic() - started))
            await driver.wait()
        finally:
            for process in (*runners, driver):
                if process is not None and process.returncode is None:
                    process.kill()
                    await process.wait()
            for reader in readers:
                reader.cancel()
    return summarize(samples, mapping, done)


def sample(
    payload: dict[str, Any], scheds: dict[str, Any], mapping: dict[str, Any], t: float
) -> dict[str, Any]:
    """One sample: each member's instant for the frame (frames from the RAOP member's), the
    spread on the sender's timelines, and with the PTP receiver's own servo offset."""
    frame, raop = payload["frame"], payload["raop_ns"]
    ptp_offset = payload["ptp_minus_wall_ns"]
    sender = {
        "ptp": instant_ns(scheds["ptp"], mapping["ptp"], frame, ptp_offset),
        "ntp": instant_ns(scheds["ntp"], mapping["ntp"], frame),
        "raop": raop,
    }
    servo = {**sender, "ptp": instant_ns(scheds["ptp"], mapping["ptp"], frame)}
    spread = (max(sender.values()) - min(sender.values())) / FRAME_NS
    servo_spread = (max(servo.values()) - min(servo.values())) / FRAME_NS
    rel = {k: round((v - raop) / FRAME_NS, 3) for k, v in sender.items() if k != "raop"}
    servo_ptp = round((servo["ptp"] - raop) / FRAME_NS, 3)
    print(
        f"{t:7.1f} s  spread {spread:6.3f} frames (vs RAOP: ptp {rel['ptp']:+.3f},"
        f" ntp {rel['ntp']:+.3f}; ptp by its servo {servo_ptp:+.3f})",
        flush=True,
    )
    return {
        "t_s": t,
        "spread_frames": spread,
        "servo_spread_frames": servo_spread,
        "cpu_s": payload["cpu_s"],
    }


def summarize(
    samples: list[dict[str, Any]], mapping: dict[str, Any], done: dict[str, Any]
) -> dict[str, Any]:
    """Per-minute maxima, the overall maximum, CPU."""
    per_minute: dict[int, float] = {}
    for one in samples:
        minute = int(one["t_s"] // 60)
        per_minute[minute] = max(per_minute.get(minute, 0.0), one["spread_frames"])
    cpu = 0.0
    if len(samples) >= 2:
        cpu = (samples[-1]["cpu_s"] - samples[0]["cpu_s"]) / (
            samples[-1]["t_s"] - samples[0]["t_s"]
        )
    return {
        "benchmark": "drift",
        "samples": len(samples),
        "max_spread_frames": round(max((s["spread_frames"] for s in samples), default=-1), 4),
        "per_minute_max_frames": [round(per_minute[m], 4) for m in sorted(per_minute)],
        "max_servo_spread_frames": round(
            max((s["servo_spread_frames"] for s in samples), default=-1), 4
        ),
        "cpu_percent_of_core": round(100 * cpu, 2),
        "ptp_clock_ppm": PPM[0],
        "timings": {key: value["timing"] for key, value in mapping.items()},
        "misaligned": [key for key, value in mapping.items() if value["misaligned"]],
        "departed": done.get("departed"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument(
        "--ptp-ppm", type=float, default=0.0, help="the PTP emulator's clock runs this much fast"
    )
    parser.add_argument("--drive", nargs=2, metavar="ADDRESS:PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    PPM[0] = args.ptp_ppm
    if args.drive:
        ap2 = [(text.rsplit(":", 1)[0], int(text.rsplit(":", 1)[1])) for text in args.drive]
        asyncio.run(drive(ap2, args.minutes, args.every))
        return 0
    result = asyncio.run(measure(args.minutes, args.every))
    for minute, spread in enumerate(result["per_minute_max_frames"]):
        print(f"minute {minute + 1:3d}: max spread {spread:.3f} frames")
    print(
        f"max spread {result['max_spread_frames']} frames (with the PTP receiver's servo:"
        f" {result['max_servo_spread_frames']}), CPU {result['cpu_percent_of_core']} % of a core"
    )
    print(json.dumps(result))
    return 0 if 0 <= result["max_spread_frames"] <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
