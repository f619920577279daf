"""`airplay-provider config NAME [KEY=VALUE ...]`: show or change a player's settings.

NAME is a player id or name. Players with stored settings are found without the network;
others are looked up by discovery. ``KEY=`` (empty value) resets a setting to its default.
Values are validated against the same ConfigEntry definitions Music Assistant uses.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from music_assistant_models.config_entries import ConfigEntry, ConfigValueType
from music_assistant_models.enums import ConfigEntryType

from airplay_provider.config import (
    ConfigValidationError,
    player_config_entries,
    validate_values,
)
from airplay_provider.config_text import parse_text_value
from airplay_provider.host.cli import add_interface_argument
from airplay_provider.host.cmd_discover import DEFAULT_TIMEOUT, look_up_devices
from airplay_provider.host.config_store import ConfigStore, ConfigStoreError
from airplay_provider.host.names import ambiguous_message, device_ids, device_name, match_players
from airplay_provider.protocol.errors import AirplayError
from airplay_provider.protocol.txt import DeviceRecord

EXIT_NOT_FOUND = 1
EXIT_INVALID = 2


class LookupFailedError(AirplayError):
    """NAME matched no player, or several; `str()` is the message for the user."""


@dataclass(frozen=True)
class Target:
    """The player a `config` command is about."""

    player_id: str
    name: str
    device: DeviceRecord | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``NAME``, ``KEY=VALUE`` pairs, ``--timeout``, ``--interface``."""
    parser.add_argument("name", metavar="NAME", help="player name or id (ap + 12 hex digits)")
    parser.add_argument("assignments", metavar="KEY=VALUE", nargs="*", help="settings to change")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"at most this long to look for the receiver when it has no stored settings "
        f"(default {DEFAULT_TIMEOUT}); an exact name or id ends the look-up at once",
    )
    add_interface_argument(parser)


def match_devices(devices: Sequence[DeviceRecord], text: str) -> list[DeviceRecord]:
    """The devices `text` names, by the one rule of `host.names`."""
    return match_players(devices, text, name=device_name, ids=device_ids)


def resolve_target(store: ConfigStore, text: str, devices: Sequence[DeviceRecord] | None) -> Target:
    """Find the player: stored settings first, then the discovered `devices`."""
    stored = store.find_players(text)
    if len(stored) == 1:
        player_id = stored[0]
        device = next((d for d in devices or () if d.player_id == player_id), None)
        return Target(player_id, store.player_name(player_id) or player_id, device)
    if len(stored) > 1:
        raise LookupFailedError(
            ambiguous_message(text, [(store.player_name(p) or p, p) for p in stored])
        )
    matches = match_devices(devices or (), text)
    if len(matches) == 1:
        device = matches[0]
        return Target(device.player_id, device.name, device)
    if len(matches) > 1:
        raise LookupFailedError(ambiguous_message(text, [(d.name, d.player_id) for d in matches]))
    seen = ", ".join(sorted(d.name for d in devices or ())) or "none"
    raise LookupFailedError(
        f"No AirPlay receiver named {text!r} found (receivers seen: {seen}). "
        "Check the name, or give more time with --timeout."
    )


def parse_assignments(
    entries: Sequence[ConfigEntry], assignments: Sequence[str]
) -> dict[str, ConfigValueType]:
    """``KEY=VALUE`` texts → typed values (None: reset to default). Raises ConfigValidationError."""
    by_key = {entry.key: entry for entry in entries}
    changes: dict[str, ConfigValueType] = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigValidationError(key, f"expected KEY=VALUE, got {assignment!r}")
        entry = by_key.get(key)
        if entry is None:
            settable = [e for e in entries if not e.hidden]
            validate_values(settable, {key: None})  # raises with the list of known keys
            continue
        if entry.hidden and text != "":
            raise ConfigValidationError(
                key,
                f"{key} is stored by `airplay-provider pair` and cannot be set by hand "
                f"(`{key}=` forgets it)",
            )
        changes[key] = None if text == "" else parse_text_value(entry, text)
    return changes


def format_settings(entries: Sequence[ConfigEntry], values: dict[str, ConfigValueType]) -> str:
    """One line per setting: key, value (secrets masked), default, label."""
    rows = [("KEY", "VALUE", "DEFAULT", "DESCRIPTION")]
    for entry in entries:
        if entry.type is ConfigEntryType.ALERT:
            rows.append(("!", entry.label, "", ""))
            continue
        if entry.hidden and entry.key not in values:
            continue
        value = values.get(entry.key, entry.default_value)
        shown = _show(entry, value)
        rows.append((entry.key, shown, _show(entry, entry.default_value), entry.label))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        lines.append("  ".join([*cells, row[3]]).rstrip())
    return "\n".join(lines)


def _show(entry: ConfigEntry, value: ConfigValueType) -> str:
    if value is None or value == "":
        return "-"
    if entry.type is ConfigEntryType.SECURE_STRING:
        return "(set)"
    if entry.options:
        for option in entry.options:
            if option.value == value:
                return f"{value} ({option.title})"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Show or change the settings; exit 1 when the player can't be found, 2 on bad values."""
    out = out or sys.stdout
    err = err or sys.stderr
    store = ConfigStore()
    try:
        store.load()
    except ConfigStoreError as error:
        print(f"error: {error}", file=err)
        return EXIT_NOT_FOUND
    devices: list[DeviceRecord] | None = None
    if len(store.find_players(args.name)) != 1:
        devices = asyncio.run(look_up_devices(args.interfaces, args.name, args.timeout))
    try:
        target = resolve_target(store, args.name, devices)
    except LookupFailedError as error:
        print(f"error: {error}", file=err)
        return EXIT_NOT_FOUND
    entries = player_config_entries(target.device, include_enabled=True)
    if not args.assignments:
        print(f"{target.name} ({target.player_id})", file=out)
        print(format_settings(entries, store.player_values(target.player_id)), file=out)
        return 0
    try:
        changes = parse_assignments(entries, args.assignments)
    except ConfigValidationError as error:
        print(f"error: {error}", file=err)
        return EXIT_INVALID
    store.set_player_values(target.player_id, changes, name=target.name)
    try:
        store.save()
    except ConfigStoreError as error:
        print(f"error: {error}", file=err)
        return EXIT_NOT_FOUND
    print(f"Saved {len(changes)} setting(s) for {target.name} in {store.path}", file=out)
    return 0
