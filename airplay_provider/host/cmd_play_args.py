"""Arguments of `airplay-provider play`, kept apart from the command itself so the CLI can
parse them, and start the slow parts early (the streamers' fork server, ffprobe on the source),
while it still imports the command (~0.3 s).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
from typing import Final

from airplay_provider.host.cli import add_interface_argument, interface_address

DEFAULT_DISCOVERY_S: Final = 5.0


def _sync_adjust(text: str) -> tuple[str, int]:
    name, sep, value = text.rpartition("=")
    try:
        ms = int(value)
    except ValueError:
        ms = None
    if not sep or not name or ms is None or not -500 <= ms <= 500:
        raise argparse.ArgumentTypeError(f"expected NAME=MS with MS in -500..500, got {text!r}")
    return name, ms


def _volume(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"volume must be 0..100, got {text!r}")
    return value


def _position(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 86400.0:  # also rejects nan and inf
        raise argparse.ArgumentTypeError(f"expected seconds ≥ 0, got {text!r}")
    return value


EXIT_STATUS_HELP: Final = """\
NAME is a player's exact name, id or MAC (any case), else a part of exactly one player's name,
or HOST:PORT for a RAOP receiver without mDNS.

exit status:
  0        every player played to the end
  1        no player played to the end, or the source failed
  2        usage error (a bad option, an ambiguous or repeated player name)
  3        some players played to the end, at least one failed
  128+N    stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """SOURCE, ``--player`` (repeatable), ``--volume``, ``--sync-adjust``, ``--interface``..."""
    parser.epilog = EXIT_STATUS_HELP
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("source", metavar="SOURCE", help="audio file, URL, or - for stdin")
    parser.add_argument(
        "--player",
        dest="players",
        metavar="NAME",
        action="append",
        required=True,
        help="receiver name, player id, MAC or HOST:PORT (repeat for multi-room)",
    )
    parser.add_argument("--volume", type=_volume, metavar="0..100", help="volume of every player")
    parser.add_argument(
        "--sync-adjust",
        dest="sync_adjust",
        metavar="NAME=MS",
        type=_sync_adjust,
        action="append",
        default=[],
        help="delay (+) or advance (-) one player by MS milliseconds",
    )
    parser.add_argument(
        "--timing",
        choices=("auto", "ptp", "ntp"),
        help="AirPlay 2 clock for every player (default: each player's airplay2_timing setting,"
        " auto: PTP, NTP when the receiver never follows it)",
    )
    parser.add_argument(
        "--hires",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="24-bit/48 kHz for every player that can take it, this run only (default: each"
        " player's hires_audio setting; needs AirPlay 2 buffered receivers, else 16-bit/44.1 kHz"
        " with the reason shown)",
    )
    parser.add_argument(
        "--discovery-timeout",
        type=float,
        default=DEFAULT_DISCOVERY_S,
        metavar="S",
        help=f"seconds to wait for the players to appear (default {DEFAULT_DISCOVERY_S:g})",
    )
    parser.add_argument(
        "--announce",
        metavar="FILE",
        help="an announcement (file or URL) mixed over the music in every room, music ducked",
    )
    parser.add_argument(
        "--announce-at",
        type=_position,
        metavar="SECONDS",
        help="session position where the announcement starts (default: as soon as it can)",
    )
    add_interface_argument(parser)
    parser.add_argument(
        "--listen-port",
        dest="listen_port",
        type=_port,
        metavar="PORT",
        help="also serve the audio over RTSP on this TCP port (listen along with VLC, ffmpeg)",
    )
    parser.add_argument(
        "--listen-address",
        dest="listen_address",
        metavar="ADDR",
        type=interface_address,
        help="address the RTSP server binds (default: the first --interface, else all)",
    )


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1..65535, got {text!r}")
    return int(text)


class EarlyProbe:
    """ffprobe on the source, started before the command is imported (see `prestart`)."""

    def __init__(self, source: str, argv: list[str]) -> None:
        self.source = source
        self.proc: subprocess.Popen[bytes] | None = None
        with contextlib.suppress(OSError):  # then `probe` runs it again and reports why
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )

    def kill(self) -> None:
        """Stop and reap it if still running (idempotent)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()


def prestart(args: argparse.Namespace) -> None:
    """Start ffprobe on the source now (`args.early_probe`); `play` picks up its output."""
    from airplay_provider.audio_source import (  # noqa: PLC0415 - light, and only needed here
        AudioSourceError,
        probe_argv,
    )

    args.early_probe = None
    if args.source != "-":
        with contextlib.suppress(AudioSourceError):  # no ffprobe: `play` says so
            args.early_probe = EarlyProbe(args.source, probe_argv(args.source))
