"""`airplay-provider discover`: list the AirPlay receivers seen within a time window."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from airplay_provider.config import PlayerSettings
from airplay_provider.discovery import AirPlayDiscovery
from airplay_provider.host.cli import add_interface_argument
from airplay_provider.host.config_store import ConfigStore, ConfigStoreError
from airplay_provider.host.names import (
    SUBSTRING_SETTLE_S,
    device_ids,
    device_name,
    is_exact,
    match_players,
)
from airplay_provider.player import AirPlayPlayer, settings_from_values
from airplay_provider.protocol.txt import DeviceRecord, StreamingProtocol
from airplay_provider.session.players import player_format

DEFAULT_TIMEOUT = 3.0
LOOKUP_POLL_S = 0.05
_PROTOCOL_NAMES = {StreamingProtocol.RAOP: "raop", StreamingProtocol.AIRPLAY2: "airplay2"}
_LOGGER = logging.getLogger("airplay_provider.discover")

#: A player's settings by device (the user's stored ones; defaults when none).
SettingsLookup = Callable[[DeviceRecord], PlayerSettings]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--timeout S``, ``--json``, ``--interface ADDR``."""
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds to listen (default {DEFAULT_TIMEOUT})",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list for scripts")
    add_interface_argument(parser)


class _Quiet:
    """Discovery listener that keeps nothing: the result is read from `devices` at the end."""

    async def device_added(self, device: DeviceRecord) -> None:
        """Nothing to do."""

    async def device_updated(self, device: DeviceRecord) -> None:
        """Nothing to do."""

    async def device_removed(self, device: DeviceRecord) -> None:
        """Nothing to do."""


async def collect_devices(
    interfaces: Sequence[str] | None, listen_seconds: float
) -> list[DeviceRecord]:
    """Browse for `listen_seconds`; the receivers present at the end, sorted by name."""
    async with AirPlayDiscovery(_Quiet(), interfaces=interfaces) as discovery:
        await asyncio.sleep(listen_seconds)
        devices = list(discovery.devices.values())
    return sorted(devices, key=lambda device: (device.name.lower(), device.player_id))


async def look_up_devices(
    interfaces: Sequence[str] | None, text: str, timeout: float
) -> list[DeviceRecord]:
    """Browse until `text` names a receiver as `play --player` decides (`host.names`): at once
    for an exact name or id, after `SUBSTRING_SETTLE_S` for a part of a name, else `timeout`.
    Returns every receiver seen by then."""
    async with AirPlayDiscovery(_Quiet(), interfaces=interfaces) as discovery:
        loop = asyncio.get_running_loop()
        begun = loop.time()
        while True:
            devices = list(discovery.devices.values())
            elapsed = loop.time() - begun
            matches = match_players(devices, text, name=device_name, ids=device_ids)
            exact = [d for d in matches if is_exact(text, d.name, device_ids(d))]
            if exact or elapsed >= timeout or (matches and elapsed >= SUBSTRING_SETTLE_S):
                return devices
            await asyncio.sleep(LOOKUP_POLL_S)


def protocol_name(device: DeviceRecord, settings: PlayerSettings | None = None) -> str | None:
    """``raop`` / ``airplay2``: what `play` streams with, given the player's `settings` (its
    protocol setting, AUTO by default); None when no route exists here.

    The answer is `AirPlayPlayer.protocol`, the very property the session's stream target is
    built from.
    """
    protocol = AirPlayPlayer(device, settings).protocol
    return None if protocol is None else _PROTOCOL_NAMES[protocol]


def play_format(
    device: DeviceRecord, settings: PlayerSettings | None = None
) -> tuple[str | None, str | None]:
    """(format `play` streams to this player alone, why it is not hi-res when it asked for it):
    ``("24-bit/48 kHz", None)``, ``("16-bit/44.1 kHz", "plays 16-bit/44.1 kHz, not hi-res: …")``;
    (None, None) when it has no route. The same choice the session makes (`group_format`); in a
    group, a member that cannot take hi-res brings everyone to 16-bit/44.1 kHz."""
    return player_format(AirPlayPlayer(device, settings))


def stored_settings(store: ConfigStore | None) -> SettingsLookup:
    """Each player's settings as `play` reads them from the config `store` (None: defaults)."""

    def lookup(device: DeviceRecord) -> PlayerSettings:
        if store is None:
            return PlayerSettings()
        values = store.player_values(device.player_id)
        return settings_from_values(values, device.name, _LOGGER)

    return lookup


def _defaults(device: DeviceRecord) -> PlayerSettings:
    return PlayerSettings()


def device_summary(device: DeviceRecord, settings: SettingsLookup = _defaults) -> dict[str, object]:
    """JSON-ready description of one receiver."""
    pcm_format, note = play_format(device, settings(device))
    return {
        "player_id": device.player_id,
        "name": device.name,
        "protocol": protocol_name(device, settings(device)),
        "format": pcm_format,
        "format_note": note,
        "airplay2_capable": device.supports_airplay2,
        "manufacturer": device.manufacturer,
        "model": device.model,
        "model_id": device.model_id,
        "address": device.address,
        "addresses": list(device.addresses),
        "hostname": device.hostname,
        "raop_port": device.raop_port,
        "airplay_port": device.airplay_port,
        "pairing_required": device.pairing_required,
        "password_required": device.password_required,
        "features": f"0x{device.features:X}",
        "status_flags": f"0x{device.status_flags:X}",
    }


def format_table(devices: Sequence[DeviceRecord], settings: SettingsLookup = _defaults) -> str:
    """Aligned columns: name, protocol and format (what `play` uses), model, address, pairing."""
    header = ("NAME", "PROTOCOL", "FORMAT", "MODEL", "ADDRESS", "PAIRING")
    rows = [header]
    for device in devices:
        protocol = (protocol_name(device, settings(device)) or "none").upper()
        if device.supports_airplay2 and protocol != "AIRPLAY2":
            protocol += " (AP2-capable)"
        pairing = "required" if device.pairing_required else "no"
        if device.password_required:
            pairing += ", password"
        address = device.address or "-"
        port = device.raop_port or device.airplay_port
        pcm_format, note = play_format(device, settings(device))
        shown = (pcm_format or "-") + (" (hi-res not possible)" if note else "")
        rows.append((device.name, protocol, shown, device.model, f"{address}:{port}", pairing))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Print what was found; exit 1 (with a message) when nothing was."""
    out = out or sys.stdout
    err = err or sys.stderr
    if args.timeout <= 0:
        print("--timeout must be a positive number of seconds", file=err)
        return 2
    store: ConfigStore | None = ConfigStore()
    try:
        assert store is not None
        store.load()
    except ConfigStoreError as error:
        print(f"warning: {error}; showing the protocols of default settings", file=err)
        store = None
    settings = stored_settings(store)
    devices = asyncio.run(collect_devices(args.interfaces, args.timeout))
    if args.json:
        summaries = [device_summary(device, settings) for device in devices]
        print(json.dumps(summaries, indent=2), file=out)
    elif devices:
        print(format_table(devices, settings), file=out)
    if not devices:
        where = ", ".join(args.interfaces) if args.interfaces else "all interfaces"
        print(f"No AirPlay receivers found within {args.timeout:g} s on {where}.", file=err)
        return 1
    return 0
