"""The standalone host's user config file: provider and per-player settings, as JSON.

Location: ``$AIRPLAY_PROVIDER_CONFIG`` or ``~/.config/airplay-provider/config.json``. The file
will hold pairing credentials, so it is written with mode 0600 (its directory 0700), and
atomically: a temporary file in the same directory, fsync, then rename over the old one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from music_assistant_models.config_entries import ConfigValueType

from airplay_provider.protocol.errors import AirplayError

ENV_VAR: Final = "AIRPLAY_PROVIDER_CONFIG"
FORMAT_VERSION: Final = 1


class ConfigStoreError(AirplayError):
    """The config file cannot be read or written; `str()` says which file and why."""


def default_config_path() -> Path:
    """``$AIRPLAY_PROVIDER_CONFIG`` if set, else ``~/.config/airplay-provider/config.json``."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".config" / "airplay-provider" / "config.json"


class ConfigStore:
    """Load, query, change and atomically save the user config file."""

    def __init__(self, path: Path | None = None) -> None:
        """Use `path`, or the default location."""
        self.path = path or default_config_path()
        self._provider: dict[str, ConfigValueType] = {}
        self._players: dict[str, dict[str, object]] = {}

    def load(self) -> None:
        """Read the file; a missing file is an empty config."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._provider, self._players = {}, {}
            return
        except OSError as err:
            raise ConfigStoreError(f"{self.path}: cannot read ({err.strerror})") from err
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigStoreError(f"{self.path}: not valid JSON ({err})") from err
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise ConfigStoreError(f"{self.path}: not an airplay-provider config (version 1)")
        provider = data.get("provider", {})
        players = data.get("players", {})
        if not isinstance(provider, dict) or not isinstance(players, dict):
            raise ConfigStoreError(f"{self.path}: 'provider' and 'players' must be objects")
        for player_id, entry in players.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("values", {}), dict):
                raise ConfigStoreError(f"{self.path}: player {player_id!r} is malformed")
        self._provider = provider
        self._players = players

    def player_ids(self) -> list[str]:
        """Ids of every player with stored settings."""
        return sorted(self._players)

    def player_name(self, player_id: str) -> str | None:
        """The name last seen for this player, if stored."""
        name = self._players.get(player_id, {}).get("name")
        return name if isinstance(name, str) else None

    def player_values(self, player_id: str) -> dict[str, ConfigValueType]:
        """Stored values of one player (a copy)."""
        values = self._players.get(player_id, {}).get("values", {})
        assert isinstance(values, dict)
        return dict(values)

    def set_player_values(
        self,
        player_id: str,
        changes: Mapping[str, ConfigValueType],
        *,
        name: str | None = None,
    ) -> None:
        """Merge `changes` into a player's values; a None value removes the key (default)."""
        entry = self._players.setdefault(player_id, {"values": {}})
        values = self.player_values(player_id)
        for key, value in changes.items():
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
        entry["values"] = values
        if name:
            entry["name"] = name

    def provider_values(self) -> dict[str, ConfigValueType]:
        """Stored provider-level values (a copy)."""
        return dict(self._provider)

    def set_provider_values(self, changes: Mapping[str, ConfigValueType]) -> None:
        """Merge provider-level changes; None removes a key."""
        for key, value in changes.items():
            if value is None:
                self._provider.pop(key, None)
            else:
                self._provider[key] = value

    def find_players(self, text: str) -> list[str]:
        """Stored player ids whose id or stored name equals `text` (case-insensitive)."""
        wanted = text.strip().lower()
        return [
            player_id
            for player_id in sorted(self._players)
            if wanted in (player_id.lower(), (self.player_name(player_id) or "").lower())
        ]

    def save(self) -> None:
        """Write atomically with mode 0600."""
        data = {"version": FORMAT_VERSION, "provider": self._provider, "players": self._players}
        payload = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")
        directory = self.path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigStoreError(f"{directory}: cannot create ({err.strerror})") from err
        temporary = directory / f".{self.path.name}.{secrets.token_hex(6)}.tmp"
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as err:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise ConfigStoreError(f"{self.path}: cannot write ({err.strerror})") from err
        _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def identity_path(config_path: Path) -> Path:
    """Where the standalone host keeps its DACP id: ``identity.json`` beside the config."""
    return config_path.parent / "identity.json"
