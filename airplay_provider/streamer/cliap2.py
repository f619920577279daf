"""`cliap2`: stream stdin PCM to one AirPlay 2 receiver (the contract of ARCHITECTURE.md §3)."""

from __future__ import annotations

import sys

from airplay_provider.streamer.airplay2 import airplay2_streamer
from airplay_provider.streamer.airplay2_options import parse_options
from airplay_provider.streamer.cli_runner import Streamer, run_cli
from airplay_provider.streamer.status import StatusWriter


def _build(argv: list[str], status: StatusWriter) -> tuple[Streamer, str | None]:
    options = parse_options(argv)
    status.debug_level = options.common.debug
    return airplay2_streamer(options, status), options.common.cmdpipe


def main(argv: list[str] | None = None) -> int:
    """Entry point of `bin/cliap2` and the `cliap2` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    return run_cli(args, name="cliap2", check_flag="--testrun", ntp_flag="--ntp", factory=_build)


if __name__ == "__main__":
    sys.exit(main())
