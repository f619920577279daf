"""`airplay-provider pair NAME`: pair with a receiver that asks for a PIN, store credentials.

The receiver is found by mDNS (or given with ``--address``/``--port``), asked to show its PIN,
and the PIN is read from ``--pin``, the terminal (hidden) or one line of stdin. Credentials go
into the user config file (mode 0600) under the player's hidden ``airplay_credentials`` or
``raop_credentials``; the pairing identity is the DACP id kept in ``identity.json`` beside it.
Neither the PIN nor the credentials are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from airplay_provider.config import CONF_AIRPLAY_PROTOCOL
from airplay_provider.discovery import AirPlayDiscovery
from airplay_provider.host.cli import add_interface_argument
from airplay_provider.host.config_store import ConfigStore, ConfigStoreError, identity_path
from airplay_provider.host.names import (
    SUBSTRING_SETTLE_S,
    ambiguous_message,
    device_ids,
    device_name,
    is_exact,
    match_players,
)
from airplay_provider.identity import IdentityError, load_or_create_dacp_id
from airplay_provider.pairing.attempt import (
    PROTOCOL_LABELS,
    PairingSession,
    PairingTarget,
    normalize_pin,
)
from airplay_provider.pairing.errors import InvalidPinError, PairingError
from airplay_provider.pairing.manager import credentials_key
from airplay_provider.protocol.errors import AirplayError
from airplay_provider.protocol.txt import (
    DeviceRecord,
    ProtocolPreference,
    ProtocolUnavailableError,
    StreamingProtocol,
    choose_protocol,
    normalize_mac,
    player_id_from_mac,
)

DEFAULT_TIMEOUT = 5.0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOTHING_TO_DO = 0
PIN_ATTEMPTS = 3
_PROTOCOLS = {
    "auto": ProtocolPreference.AUTO,
    "raop": ProtocolPreference.RAOP,
    "airplay2": ProtocolPreference.AIRPLAY2,
}


class PairCommandError(AirplayError):
    """A failure with a message for the user and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class PairPlan:
    """Who to pair with, where, and how."""

    player_id: str
    name: str
    target: PairingTarget


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``NAME``, ``--pin``, ``--protocol``, ``--address``/``--port``, ``--timeout``,
    ``--interface``."""
    parser.add_argument("name", metavar="NAME", help="receiver name or player id")
    parser.add_argument("--pin", help="the PIN the device shows (for scripts; default: ask)")
    parser.add_argument(
        "--protocol",
        choices=sorted(_PROTOCOLS),
        default=None,
        help="pair for this protocol (default: the player's setting, else auto)",
    )
    parser.add_argument(
        "--address", help="pair with this address directly, without mDNS (NAME: MAC or id)"
    )
    parser.add_argument("--port", type=int, help="port with --address (the _airplay port)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds to look for the receiver (default {DEFAULT_TIMEOUT})",
    )
    add_interface_argument(parser)


class _Finder:
    """Discovery listener that keeps every receiver seen (with an address), by player id."""

    def __init__(self) -> None:
        self.seen: dict[str, DeviceRecord] = {}
        self.changed = asyncio.Event()

    async def device_added(self, device: DeviceRecord) -> None:
        """Remember it once it has an address."""
        if device.address:
            self.seen[device.player_id] = device
            self.changed.set()

    async def device_updated(self, device: DeviceRecord) -> None:
        """An update may complete the record."""
        await self.device_added(device)

    async def device_removed(self, device: DeviceRecord) -> None:
        """Forget it."""
        self.seen.pop(device.player_id, None)


async def find_device(
    name: str, interfaces: Sequence[str] | None, timeout_s: float
) -> DeviceRecord:
    """The receiver ``name`` designates (`host.names`: exact name, id or MAC at once; a part of
    one name once discovery settled), within ``timeout_s``."""
    finder = _Finder()
    loop = asyncio.get_running_loop()
    begun = loop.time()
    settle_at = begun + min(SUBSTRING_SETTLE_S, timeout_s)
    found: DeviceRecord | None = None
    async with AirPlayDiscovery(finder, interfaces=interfaces):
        while True:
            now = loop.time()
            settled = now >= settle_at
            matches = match_players(finder.seen.values(), name, name=device_name, ids=device_ids)
            if len(matches) == 1 and (settled or is_exact(name, *_keys(matches[0]))):
                found = matches[0]
                break
            if len(matches) > 1 and settled:
                candidates = [(d.name, d.player_id) for d in matches]
                raise PairCommandError(ambiguous_message(name, candidates), EXIT_USAGE)
            if now >= begun + timeout_s:
                break
            wake_at = begun + timeout_s if settled else settle_at
            finder.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finder.changed.wait(), max(0.0, wake_at - now))
    if found is None:
        where = ", ".join(interfaces) if interfaces else "all interfaces"
        raise PairCommandError(
            f"no AirPlay receiver {name!r} found within {timeout_s:g} s on {where}"
        )
    return found


def _keys(device: DeviceRecord) -> tuple[str, tuple[str, ...]]:
    return device.name, device_ids(device)


def _preference(args: argparse.Namespace, stored: object) -> ProtocolPreference:
    if args.protocol is not None:
        return _PROTOCOLS[args.protocol]
    if isinstance(stored, int) and stored in {int(p) for p in ProtocolPreference}:
        return ProtocolPreference(stored)
    return ProtocolPreference.AUTO


async def plan(args: argparse.Namespace, store: ConfigStore) -> PairPlan:
    """Resolve NAME (mDNS or ``--address``) into a pairing target."""
    if args.address:
        if args.port is None or not 0 < args.port < 65536:
            raise PairCommandError("--address needs --port (1..65535)", EXIT_USAGE)
        text = args.name.strip()
        try:
            mac = normalize_mac(text[2:] if text.lower().startswith("ap") else text)
        except ValueError:
            raise PairCommandError(
                "with --address, NAME must be the player id or MAC", EXIT_USAGE
            ) from None
        player_id = player_id_from_mac(mac)
        preference = _preference(args, store.player_values(player_id).get(CONF_AIRPLAY_PROTOCOL))
        protocol = (
            StreamingProtocol.RAOP
            if preference is ProtocolPreference.RAOP
            else StreamingProtocol.AIRPLAY2
        )
        name = store.player_name(player_id) or player_id
        return PairPlan(player_id, name, PairingTarget(args.address, args.port, protocol, name))
    device = await find_device(args.name, args.interfaces, args.timeout)
    stored = store.player_values(device.player_id).get(CONF_AIRPLAY_PROTOCOL)
    try:
        protocol = choose_protocol(device, _preference(args, stored), ap2_available=True)
        target = PairingTarget.for_device(device, protocol)
    except (ProtocolUnavailableError, PairingError) as err:
        raise PairCommandError(str(err)) from None
    asked = _PROTOCOLS[args.protocol or "auto"]
    if asked is not ProtocolPreference.AUTO and StreamingProtocol(int(asked)) is not protocol:
        raise PairCommandError(
            f"{device.name} does not offer {PROTOCOL_LABELS[StreamingProtocol(int(asked))]} "
            f"(it speaks {PROTOCOL_LABELS[protocol]}); leave out --protocol to use that",
            EXIT_USAGE,
        )
    if not device.pairing_required:
        raise PairCommandError(
            f"{device.name} needs no pairing: play to it directly", EXIT_NOTHING_TO_DO
        )
    return PairPlan(device.player_id, device.name, target)


def _read_pin(prompt: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    print(prompt, end="", flush=True)
    line = sys.stdin.readline()
    if not line:
        raise PairCommandError("no PIN given (stdin closed)")
    return line.strip()


async def pair(args: argparse.Namespace, store: ConfigStore, out: TextIO) -> str:
    """Run the whole command; returns the credentials key that was stored."""
    if args.pin is not None:
        try:
            normalize_pin(args.pin)
        except InvalidPinError as err:
            raise PairCommandError(str(err), EXIT_USAGE) from None
    chosen = await plan(args, store)
    try:
        dacp_id = load_or_create_dacp_id(identity_path(store.path))
    except IdentityError as err:
        raise PairCommandError(str(err)) from None
    target = chosen.target
    print(
        f"Pairing with {chosen.name} ({target.address}:{target.port}, {target.label})...",
        file=out,
        flush=True,
    )
    async with PairingSession(target, dacp_id) as session:
        await session.start()
        print(f"{chosen.name} now shows a PIN.", file=out, flush=True)
        for attempt in range(PIN_ATTEMPTS):
            pin = args.pin
            if pin is None:
                pin = await asyncio.to_thread(_read_pin, "PIN: ")
            try:
                credentials = await session.finish(pin)
                break
            except InvalidPinError as err:
                if args.pin is not None or attempt == PIN_ATTEMPTS - 1:
                    raise PairCommandError(str(err), EXIT_USAGE) from None
                print(f"{err}; try again.", file=out, flush=True)
    key = credentials_key(target.protocol)
    store.set_player_values(chosen.player_id, {key: credentials}, name=chosen.name)
    store.save()
    label = PROTOCOL_LABELS[target.protocol]
    print(f"Paired with {chosen.name} ({label}); credentials stored in {store.path}", file=out)
    return key


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Exit 0 when paired and stored; 1 on failure; 2 on bad usage."""
    out = out or sys.stdout
    err = err or sys.stderr
    if args.timeout <= 0:
        print("--timeout must be a positive number of seconds", file=err)
        return EXIT_USAGE
    store = ConfigStore()
    try:
        store.load()
        asyncio.run(pair(args, store, out))
    except PairCommandError as failure:
        print(f"pair: {failure}", file=out if failure.exit_code == 0 else err)
        return failure.exit_code
    except PairingError as failure:
        print(f"pair: pairing failed: {failure}", file=err)
        return EXIT_FAILED
    except ConfigStoreError as failure:
        print(f"pair: {failure}", file=err)
        return EXIT_FAILED
    return 0
