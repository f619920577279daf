"""Stand-in for music_assistant.controllers.config: the player-config part, in memory.

Same storage layout as the server (``players/<id>/values/<key>``, base keys one level up),
same sync raw getters/setters, and encryption of SECURE_STRING values on save (a reversible
stand-in cipher with the server's prefix, so reading a secret without decrypting it shows).
"""

from __future__ import annotations

import base64
from copy import deepcopy
from typing import TYPE_CHECKING, Any, cast

from music_assistant_models import config_entries
from music_assistant_models.config_entries import ConfigValueType, PlayerConfig

from music_assistant.constants import BASE_KEYS, CONF_PLAYERS, ENCRYPT_SUFFIX

if TYPE_CHECKING:
    from music_assistant_models.enums import PlayerType

    from music_assistant.mass import MusicAssistant


class ConfigController:
    """Persistent settings (in memory here)."""

    __slots__ = ("_data", "initialized", "mass", "saved_player_values")

    def __init__(self, mass: MusicAssistant) -> None:
        """Empty store; encryption callbacks installed like the server's setup does."""
        self.mass = mass
        self._data: dict[str, Any] = {}
        self.initialized = True
        self.saved_player_values: list[tuple[str, str, ConfigValueType]] = []
        config_entries.ENCRYPT_CALLBACK = self.encrypt_string
        config_entries.DECRYPT_CALLBACK = self.decrypt_string

    def get(self, key: str, default: Any = None) -> Any:
        """Value at a slash-separated path."""
        node: Any = self._data
        for part in key.split("/"):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def set(self, key: str, value: Any) -> None:
        """Store a value at a slash-separated path."""
        *parents, last = key.split("/")
        node = self._data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    def get_raw_player_config_value(
        self, player_id: str, key: str, default: ConfigValueType = None
    ) -> ConfigValueType:
        """Stored value only (no validation, no default from entries)."""
        return cast(
            "ConfigValueType",
            self.get(
                f"{CONF_PLAYERS}/{player_id}/values/{key}",
                self.get(f"{CONF_PLAYERS}/{player_id}/{key}", default),
            ),
        )

    def set_raw_player_config_value(self, player_id: str, key: str, value: ConfigValueType) -> None:
        """Store one raw value; KeyError for a player without config."""
        if not self.get(f"{CONF_PLAYERS}/{player_id}"):
            raise KeyError(f"Invalid player_id: {player_id}")
        self.saved_player_values.append((player_id, key, value))
        if key in BASE_KEYS:
            self.set(f"{CONF_PLAYERS}/{player_id}/{key}", value)
        else:
            self.set(f"{CONF_PLAYERS}/{player_id}/values/{key}", value)

    def create_default_player_config(
        self,
        player_id: str,
        provider: str,
        player_type: PlayerType,
        name: str | None = None,
        enabled: bool = True,
        values: dict[str, ConfigValueType] | None = None,
    ) -> None:
        """Create the player's config unless it exists."""
        if self.get(f"{CONF_PLAYERS}/{player_id}"):
            return
        self.set(
            f"{CONF_PLAYERS}/{player_id}",
            {
                "player_id": player_id,
                "provider": provider,
                "player_type": player_type.value,
                "default_name": name,
                "enabled": enabled,
                "values": dict(values or {}),
            },
        )

    def get_base_player_config(self, player_id: str, provider: str) -> PlayerConfig:
        """Config without provider entries."""
        raw = self.get(f"{CONF_PLAYERS}/{player_id}") or {
            "player_id": player_id,
            "provider": provider,
        }
        return cast("PlayerConfig", PlayerConfig.parse([], _clean(raw)))

    async def get_player_config(
        self,
        player_id: str,
    ) -> PlayerConfig:
        """Full config, parsed with the player's own entries."""
        raw = self.get(f"{CONF_PLAYERS}/{player_id}")
        if not raw:
            raise KeyError(f"No config found for player id {player_id}")
        player = self.mass.players.get_player(player_id)
        entries = await player.get_config_entries() if player is not None else []
        return cast("PlayerConfig", PlayerConfig.parse(entries, _clean(deepcopy(raw))))

    async def save_player_config(
        self, player_id: str, values: dict[str, ConfigValueType]
    ) -> PlayerConfig:
        """What the UI's save does: store values (secrets encrypted), notify the player."""
        config = await self.get_player_config(player_id)
        changed = config.update(values)
        raw = config.to_raw()
        self.set(f"{CONF_PLAYERS}/{player_id}/values", raw["values"])
        if "enabled" in values:
            self.set(f"{CONF_PLAYERS}/{player_id}/enabled", values["enabled"])
        config = await self.get_player_config(player_id)
        await self.mass.players.on_player_config_change(config, changed)
        return config

    def set_player_default_name(self, player_id: str, default_name: str) -> None:
        """Persist the default name."""
        self.set(f"{CONF_PLAYERS}/{player_id}/default_name", default_name)

    def set_player_type(self, player_id: str, player_type: PlayerType) -> None:
        """Persist the player type."""
        self.set(f"{CONF_PLAYERS}/{player_id}/player_type", player_type)

    def encrypt_string(self, str_value: str) -> str:
        """Stand-in cipher (reversible, clearly not the plain text)."""
        if str_value.startswith(ENCRYPT_SUFFIX):
            return str_value
        return ENCRYPT_SUFFIX + base64.b64encode(str_value[::-1].encode()).decode()

    def decrypt_string(self, encrypted_str: str) -> str:
        """Inverse of `encrypt_string`; plain strings pass through."""
        if not encrypted_str or not encrypted_str.startswith(ENCRYPT_SUFFIX):
            return encrypted_str
        return base64.b64decode(encrypted_str[len(ENCRYPT_SUFFIX) :]).decode()[::-1]


def _clean(raw: dict[str, Any]) -> dict[str, Any]:
    """Stored dict → fields PlayerConfig accepts."""
    out = dict(raw)
    out.setdefault("default_name", out.get("player_id"))
    pt = out.get("player_type")
    if pt is not None and not isinstance(pt, str):
        out["player_type"] = pt.value
    return out
