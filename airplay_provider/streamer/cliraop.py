"""`cliraop`: stream stdin PCM to one RAOP receiver (the contract of docs/ARCHITECTURE.md §3)."""

from __future__ import annotations

import sys

from airplay_provider.streamer.cli_runner import Streamer, run_cli
from airplay_provider.streamer.raop import raop_streamer
from airplay_provider.streamer.raop_options import parse_options
from airplay_provider.streamer.status import StatusWriter


def _build(argv: list[str], status: StatusWriter) -> tuple[Streamer, str | None]:
    options = parse_options(argv)
    status.debug_level = options.debug
    return raop_streamer(options, status), options.cmdpipe


def main(argv: list[str] | None = None) -> int:
    """Entry point of `bin/cliraop` and the `cliraop` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    return run_cli(args, name="cliraop", check_flag="-check", ntp_flag="-ntp", factory=_build)


if __name__ == "__main__":
    sys.exit(main())
