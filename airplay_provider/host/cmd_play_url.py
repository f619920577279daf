"""`airplay-provider play-url URL_OR_FILE --player NAME`: the device (an Apple TV) fetches and
plays the media itself; a local file is served to it for the time of playback.

Shows a progress line (position / duration, state); Ctrl-C stops playback on the device and the
file server. Exit codes: 0 played to the end, 1 failed, 2 usage, 128 + N stopped by signal N.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from airplay_provider.config import CONF_AIRPLAY_CREDENTIALS
from airplay_provider.host.cli import add_interface_argument
from airplay_provider.host.cmd_pair import PairCommandError, find_device
from airplay_provider.host.config_store import ConfigStore, ConfigStoreError, identity_path
from airplay_provider.host.signals import GracefulStop, run_interruptible
from airplay_provider.identity import IdentityError, load_or_create_dacp_id
from airplay_provider.protocol.hap.credentials import HapCredentials
from airplay_provider.protocol.hap.errors import InvalidCredentials
from airplay_provider.protocol.video import (
    Progress,
    UrlPlaybackError,
    clock,
    progress_line,
)
from airplay_provider.video import play_url

DEFAULT_TIMEOUT = 5.0
EXIT_FAILED = 1
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``URL_OR_FILE``, ``--player``, ``--timeout``, ``--interface``."""
    parser.add_argument("source", metavar="URL_OR_FILE", help="http(s) URL or a local file")
    parser.add_argument("--player", required=True, metavar="NAME", help="the device (name/id)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds to look for the device (default {DEFAULT_TIMEOUT})",
    )
    add_interface_argument(parser)


def _credentials(store: ConfigStore, player_id: str) -> tuple[HapCredentials | None, str]:
    """The stored AirPlay 2 credentials and our pairing id (empty without credentials)."""
    stored = store.player_values(player_id).get(CONF_AIRPLAY_CREDENTIALS)
    if not isinstance(stored, str) or not stored:
        return None, ""
    try:
        credentials = HapCredentials.parse(stored)
        return credentials, load_or_create_dacp_id(identity_path(store.path))
    except (InvalidCredentials, IdentityError) as err:
        raise UrlPlaybackError(f"stored pairing unusable ({err}); pair again") from None


class _ProgressPrinter:
    """A live line on a terminal; otherwise one line a second or on a state change."""

    def __init__(self, out: TextIO, title: str) -> None:
        self.out = out
        self.title = title
        self.tty = out.isatty()
        self.last_print = 0.0
        self.last_state = ""
        self.started = False

    def __call__(self, progress: Progress) -> None:
        if not self.started:
            print(f"playing {self.title}", file=self.out, flush=True)
            self.started = True
        line = progress_line(progress)
        now = time.monotonic()
        if self.tty:
            print("\r" + line + "\x1b[K", end="", file=self.out, flush=True)
        elif now - self.last_print >= 1.0 or progress.state.value != self.last_state:
            print(line, file=self.out, flush=True)
            self.last_print, self.last_state = now, progress.state.value

    def end_line(self) -> None:
        if self.tty and self.started:
            print(file=self.out)


async def play(
    args: argparse.Namespace, store: ConfigStore, out: TextIO, stop: GracefulStop
) -> int:
    """Find the device, play, report; the exit code."""
    device = await find_device(args.player, args.interfaces, args.timeout)
    credentials, pairing_id = _credentials(store, device.player_id)
    printer = _ProgressPrinter(out, f"{args.source!r} on {device.name}")
    stop.armed = True  # from now on a signal stops playback on the device, gently
    try:
        result = await play_url(
            device,
            args.source,
            credentials=credentials,
            pairing_id=pairing_id,
            stop=stop.event,
            on_progress=printer,
        )
    finally:
        printer.end_line()
    if not result.ended:
        print(f"stopped at {clock(result.progress.position)}", file=out)
        return 128 + (stop.signum or 2)
    print(f"done: played to the end ({clock(result.progress.position)})", file=out)
    return 0


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Exit 0 when played to the end; 1 on failure; 2 on bad usage; 128 + N on signal N."""
    out = out or sys.stdout
    if args.timeout <= 0:
        print("--timeout must be a positive number of seconds", file=sys.stderr)
        return EXIT_USAGE
    store = ConfigStore()
    stop = GracefulStop()
    try:
        store.load()
        return run_interruptible(play(args, store, out, stop), stop)
    except PairCommandError as err:
        print(f"play-url: {err}", file=sys.stderr)
        return err.exit_code or EXIT_FAILED
    except (UrlPlaybackError, ConfigStoreError) as err:
        print(f"play-url: {err}", file=sys.stderr)
        return EXIT_FAILED
