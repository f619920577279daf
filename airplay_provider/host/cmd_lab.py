"""`airplay-provider lab`: local shairport-sync receivers to try the other commands on.

For someone with no speakers at hand: N receivers advertised by mDNS on loopback only, kept
running until Ctrl-C (or SIGTERM/SIGHUP), with a line whenever one of them starts or stops
receiving audio. Their PCM output is counted and thrown away, so the lab can run for hours.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Final, TextIO

from airplay_provider.host.receivers import (
    LocalReceiver,
    ReceiverLab,
    ReceiverLabError,
    ReceiverSpec,
    lacks_root,
)
from airplay_provider.host.signals import run_interruptible

MAX_RECEIVERS: Final = 16
POLL_S: Final = 1.0
BYTES_PER_SECOND: Final = 44100 * 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--receivers N``, ``--name PREFIX``, ``--password PW``."""
    parser.add_argument(
        "--receivers", type=int, default=2, metavar="N", help="how many (default 2)"
    )
    parser.add_argument("--name", default="Lab", help="name prefix (default 'Lab')")
    parser.add_argument("--password", default=None, help="make the receivers ask for this password")


class OutputMeter:
    """Seconds of audio a receiver wrote; the file is emptied as it is counted."""

    def __init__(self, receiver: LocalReceiver) -> None:
        self.receiver = receiver
        self.seconds = 0.0
        self.playing = False

    def poll(self) -> str | None:
        """A status line when the receiver started or stopped getting audio, else None."""
        try:
            size = os.path.getsize(self.receiver.output_path)
        except OSError:
            size = 0
        if size:
            self.receiver.clear_output()
        self.seconds += size / BYTES_PER_SECOND
        playing = size > 0
        if playing == self.playing:
            return None
        self.playing = playing
        state = "receiving audio" if playing else "idle"
        return f"{self.receiver.name}: {state} ({self.seconds:.1f} s of audio so far)"


async def lab(count: int, prefix: str, password: str | None, out: TextIO) -> int:
    """Run the receivers until cancelled (by a signal); 1 if one of them dies."""
    async with ReceiverLab() as receivers_lab:
        meters = []
        for index in range(1, count + 1):
            spec = ReceiverSpec(f"{prefix} {index}", password=password)
            receiver = await receivers_lab.start_receiver(spec)
            service = await receivers_lab.wait_advertised(receiver)
            print(f"{receiver.name!r} listening on 127.0.0.1 port {service.port}", file=out)
            meters.append(OutputMeter(receiver))
        first = meters[0].receiver.name
        print(
            "\nReceivers are advertised on loopback only; try, in another terminal:\n"
            "  airplay-provider discover --interface 127.0.0.1\n"
            f"  airplay-provider play FILE --interface 127.0.0.1 --player {first!r}\n"
            "Ctrl-C stops the lab.",
            file=out,
            flush=True,
        )
        while True:
            await asyncio.sleep(POLL_S)
            for meter in meters:
                line = meter.poll()
                if line is not None:
                    print(line, file=out, flush=True)
            for receiver in receivers_lab.exited_receivers():
                print(f"{receiver.name} stopped unexpectedly", file=sys.stderr)
                return 1


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Entry point of the subcommand."""
    out = out or sys.stdout
    if lacks_root("lab"):
        return 2
    if not 1 <= args.receivers <= MAX_RECEIVERS:
        print(f"--receivers must be 1..{MAX_RECEIVERS}", file=sys.stderr)
        return 2
    try:
        code = run_interruptible(lab(args.receivers, args.name, args.password, out))
    except ReceiverLabError as err:
        print(f"lab cannot start the receivers: {err}", file=sys.stderr)
        return 1
    if code >= 128:
        print("lab stopped; every receiver and its files are gone", file=out)
    return code
