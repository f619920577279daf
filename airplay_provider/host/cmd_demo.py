"""`airplay-provider demo`: two local shairport-sync receivers (mDNS on loopback only), one
generated test signal played to both in one StreamSession, and a report of what each received
and how far apart their schedules were.

What is measured, honestly: "received" compares each receiver's PCM output with the signal
sample by sample (±2 LSB: shairport-sync dithers). The schedule error is the difference between
the instants at which the two streamers anchored the same session frame on their receivers
(`[STATUS] started actual_ntp`, the instant their sync packets give sample 0); shairport-sync's
stdout backend does not expose its own playout clock, so the receivers' timing is not observed.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TextIO

from airplay_provider.host.receivers import (
    LocalReceiver,
    ReceiverLab,
    ReceiverLabError,
    ReceiverSpec,
    lacks_root,
)
from airplay_provider.host.signals import run_interruptible
from airplay_provider.protocol.timing import ntp_diff_ns, unix_ns_from_ntp
from airplay_provider.session.group import SessionError, StreamSession
from airplay_provider.session.processes import StreamTarget

RATE = 44100
SIGNAL_S = 5.0
TOLERANCE_LSB = 2
MAX_ERROR_FRAMES = 1.0
PROGRESS_EVERY_S = 1.0
_MATCH_FRAMES = 32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--seconds`` of test signal."""
    parser.add_argument(
        "--seconds", type=float, default=SIGNAL_S, help=f"signal length (default {SIGNAL_S:g})"
    )


def demo_signal(seconds: float, *, seed: int = 7) -> array[int]:
    """Interleaved s16 stereo: a chirp per channel plus seeded noise (aligns at one offset)."""
    frames = round(seconds * RATE)
    rng = random.Random(seed)
    out = array("h", bytes(4 * frames))
    for channel, f0 in ((0, 110.0), (1, 170.0)):
        k = math.log(6000.0 / f0) / seconds
        scale = 2 * math.pi * f0 / k
        for i in range(frames):
            chirp = 4096.0 * math.sin(scale * (math.exp(k * i / RATE) - 1))
            out[2 * i + channel] = int(chirp) + rng.randint(-512, 512)
    return out


def to_flow(samples: array[int]) -> bytes:
    """s16 → f32le flow PCM (exact: the member's ffmpeg converts back to the same values)."""
    floats = array("f", (v / 32768.0 for v in samples))
    if sys.byteorder == "big":
        floats.byteswap()
    return floats.tobytes()


async def _chunks(flow: bytes) -> AsyncIterator[bytes]:
    step = RATE * 8
    for offset in range(0, len(flow), step):
        yield flow[offset : offset + step]


@dataclass
class Received:
    """How the signal appears in one receiver's output."""

    frames_out: int  # frames the receiver wrote (with its leading silence)
    offset: int | None  # frame where the signal starts in its output
    matched: int  # signal frames present within tolerance
    total: int

    @property
    def complete(self) -> bool:
        """Every signal frame arrived, in order, within ±2 LSB."""
        return self.offset is not None and self.matched == self.total


def compare(output: bytes, sent: array[int]) -> Received:
    """Find the signal in `output` and count the frames that match it."""
    got = array("h")
    got.frombytes(output[: len(output) - len(output) % 4])
    if sys.byteorder == "big":
        got.byteswap()
    total = len(sent) // 2
    head = sent[: 2 * _MATCH_FRAMES]
    offset = None
    for frame in range(len(got) // 2 - _MATCH_FRAMES):
        if abs(got[2 * frame] - head[0]) <= TOLERANCE_LSB and all(
            abs(a - b) <= TOLERANCE_LSB
            for a, b in zip(got[2 * frame : 2 * (frame + _MATCH_FRAMES)], head, strict=True)
        ):
            offset = frame
            break
    if offset is None:
        return Received(len(got) // 2, None, 0, total)
    window = got[2 * offset : 2 * (offset + total)]
    bad = {i // 2 for i, (a, b) in enumerate(zip(window, sent, strict=False)) if abs(a - b) > 2}
    matched = len(window) // 2 - len(bad)
    return Received(len(got) // 2, offset, matched, total)


async def demo(seconds: float, out: TextIO) -> int:
    """Run the demo; 0 when both receivers got everything within one frame of each other."""
    sent = demo_signal(seconds)
    async with ReceiverLab() as lab:
        receivers = [await lab.start_receiver(ReceiverSpec(f"demo-{side}")) for side in ("a", "b")]
        targets = []
        for receiver in receivers:
            service = await lab.wait_advertised(receiver)
            print(f"receiver {receiver.name!r} advertised on lo port {service.port}", file=out)
            txt = service.txt_dict()
            targets.append(
                StreamTarget(receiver.name, "127.0.0.1", service.port, txt=txt, volume=50)
            )
        session = StreamSession(_chunks(to_flow(sent)))
        commanded = time.time()
        try:
            try:
                report = await session.start(targets)
            except SessionError as err:
                print(f"FAILED: {err}", file=out)
                return 1
            await _show_progress(session, seconds, out)
        finally:
            await session.stop()  # on a signal too: no streamer outlives the demo
        outputs = [await r.settled_output() for r in receivers]
    return _summary(session, report.start_ntp, commanded, receivers, outputs, sent, out)


async def _show_progress(session: StreamSession, seconds: float, out: TextIO) -> None:
    """A progress line each second until the session has played out (bounded)."""
    deadline = time.monotonic() + seconds + 15
    while not await session.wait_ended(PROGRESS_EVERY_S) and time.monotonic() < deadline:
        playing = sum(1 for m in session.active_members if m.started is not None)
        print(
            f"  playing {session.position_s:4.1f} / {seconds:.1f} s on {playing} receiver(s)",
            file=out,
            flush=True,
        )


def _summary(  # noqa: PLR0917 - one call site, all positional by meaning
    session: StreamSession,
    start_ntp: int,
    commanded: float,
    receivers: list[LocalReceiver],
    outputs: list[bytes],
    sent: array[int],
    out: TextIO,
) -> int:
    lead = unix_ns_from_ntp(start_ntp) / 1e9 - commanded
    print(f"\nstart instant T = command + {lead * 1000:.0f} ms", file=out)
    ok = True
    anchors: list[int] = []
    members = {m.key: m for m in session.departed}
    for receiver, output in zip(receivers, outputs, strict=True):
        got = compare(output, sent)
        member = members.get(receiver.name)
        started = member.started if member is not None else None
        state = member.state.value if member is not None else "missing"
        line = f"{receiver.name}: {state}, wrote {got.frames_out} frames, signal {got.matched}/"
        line += f"{got.total} frames within ±{TOLERANCE_LSB} LSB"
        line += " — complete" if got.complete else " — INCOMPLETE"
        if started is not None:
            anchor = started.actual_ntp
            anchors.append(anchor)
            line += f"; sample 0 at T{ntp_diff_ns(anchor, start_ntp) / 1e6:+.3f} ms"
        print(line, file=out)
        ok = ok and got.complete
    if len(anchors) == 2:
        error = ntp_diff_ns(anchors[0], anchors[1]) * RATE / 1e9
        print(f"schedule error between the receivers: {error:.3f} frames", file=out)
        ok = ok and abs(error) <= MAX_ERROR_FRAMES
    else:
        ok = False
    print("demo OK" if ok else "demo FAILED", file=out)
    return 0 if ok else 1


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Entry point of the subcommand."""
    out = out or sys.stdout
    if lacks_root("demo"):
        return 2
    if not 1.0 <= args.seconds <= 20.0:
        print("--seconds must be 1..20", file=sys.stderr)
        return 2
    try:
        code = run_interruptible(demo(args.seconds, out))
    except ReceiverLabError as err:
        print(f"demo cannot start the receivers: {err}", file=sys.stderr)
        return 1
    if code >= 128:
        print("demo interrupted; receivers and streamers stopped", file=out)
    return code
