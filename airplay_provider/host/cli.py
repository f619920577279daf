"""`airplay-provider`: the standalone host's command line.

Each subcommand lives in its own module, imported only when that subcommand runs. A module
provides ``add_arguments(parser)`` and ``run(args) -> int``. To add a command, add one line to
`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import ipaddress
import logging
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import Final, Protocol

#: name → (module path, one-line help)
COMMANDS: Final[dict[str, tuple[str, str]]] = {
    "discover": ("airplay_provider.host.cmd_discover", "list AirPlay receivers on the network"),
    "config": ("airplay_provider.host.cmd_config", "show or change a player's settings"),
    "pair": ("airplay_provider.host.cmd_pair", "pair with a receiver that shows a PIN"),
    "play": ("airplay_provider.host.cmd_play", "play a file, URL or stdin on receivers, in sync"),
    "play-url": (
        "airplay_provider.host.cmd_play_url",
        "have a device (Apple TV) fetch and play a URL or file itself",
    ),
    "demo": ("airplay_provider.host.cmd_demo", "play a test signal to two local receivers"),
    "lab": ("airplay_provider.host.cmd_lab", "run local receivers (loopback) until Ctrl-C"),
}


#: Commands that start streamers: they get a `ForkServer` as ``args.launcher``.
FORKING_COMMANDS: Final = frozenset({"play"})
#: Commands whose arguments live in a light module of their own: the CLI parses them, calls its
#: ``prestart(args)`` (slow work that can start early), and only then imports the command.
ARGUMENT_MODULES: Final = {"play": "airplay_provider.host.cmd_play_args"}


class CommandModule(Protocol):
    """What a subcommand module provides."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the subcommand's arguments."""
        ...

    def run(self, args: argparse.Namespace) -> int:
        """Run it; return the exit code."""
        ...


def interface_address(text: str) -> str:
    """argparse type for ``--interface``: an IP address of this host."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(address), 0))  # only this host's own addresses can be bound
        except OSError:
            raise argparse.ArgumentTypeError(f"{text} is not an address of this host") from None
    return str(address)


def package_version() -> str:
    """The installed package's version (this checkout's when run from source)."""
    try:
        return importlib.metadata.version("airplay-provider")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def configure_logging(verbosity: int) -> None:
    """Warnings by default; ``-v`` info, ``-vv`` debug (the streamers' own logs included)."""
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbosity, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("airplay_provider").setLevel(level)


def add_interface_argument(parser: argparse.ArgumentParser) -> None:
    """``--interface ADDR`` (repeatable): where mDNS runs; default all interfaces."""
    parser.add_argument(
        "--interface",
        dest="interfaces",
        metavar="ADDR",
        action="append",
        type=interface_address,
        default=None,
        help="local address to run mDNS on (repeatable; default: all interfaces)",
    )


def build_parser(selected: str | None) -> argparse.ArgumentParser:
    """The parser; only the `selected` command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="airplay-provider", description="AirPlay output provider, standalone host."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output on stderr (-v info, -vv debug)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_path, help_text) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == selected and name in ARGUMENT_MODULES:
            arguments = importlib.import_module(ARGUMENT_MODULES[name])
            arguments.add_arguments(subparser)
            subparser.set_defaults(run=_run_later(module_path), prestart=arguments.prestart)
        elif name == selected:
            module: CommandModule = importlib.import_module(module_path)
            module.add_arguments(subparser)
            subparser.set_defaults(run=module.run)
    return parser


def _run_later(module_path: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        module: CommandModule = importlib.import_module(module_path)
        return module.run(args)

    return run


class _EarlyStop(BaseException):
    """SIGTERM/SIGHUP before the command's own handlers are in place (while it imports)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop_early(signum: int, _frame: FrameType | None) -> None:
    raise _EarlyStop(signum)


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: the process arguments) and run the subcommand."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    selected = next((arg for arg in arguments if not arg.startswith("-")), None)
    parser = build_parser(selected if selected in COMMANDS else None)
    args = parser.parse_args(arguments)
    configure_logging(args.verbose)
    launcher = None
    if selected in FORKING_COMMANDS:
        # A stop signal while the command still imports must not orphan the fork server: it
        # ends `main` here, which then reaps the server (the command installs its own handlers).
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _stop_early)
        # The streamers' pre-imported parent loads while this process imports the command.
        from airplay_provider.streamer_launcher import ForkServer  # noqa: PLC0415

        launcher = ForkServer()
        launcher.launch()
    try:
        args.launcher = launcher
        prestart = getattr(args, "prestart", None)
        if prestart is not None:
            prestart(args)
        exit_code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except _EarlyStop as stop:
        return 128 + stop.signum
    finally:
        if launcher is not None:
            launcher.close_now()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
