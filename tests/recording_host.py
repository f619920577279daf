"""A `ProviderHost` for tests: records what the provider registers, updates and commands."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection, Mapping

from music_assistant_models.config_entries import ConfigValueType
from music_assistant_models.player import PlayerMedia

from airplay_provider.player import AirPlayPlayer

Call = tuple[str, str, int | None]
WAIT_S = 5.0


class RecordingHost:
    """Registered players, config values and every command, as the provider left them."""

    def __init__(
        self,
        values: dict[str, dict[str, ConfigValueType]] | None = None,
        *,
        instance_id: str = "airplay--test",
    ) -> None:
        self.instance_id = instance_id
        self.logger = logging.getLogger("test.airplay")
        self.registered: dict[str, AirPlayPlayer] = {}
        self.unregistered: list[str] = []
        self.updates: list[str] = []
        self.values = values or {}
        self.own_ports: list[int] = []
        self.calls: asyncio.Queue[Call] = asyncio.Queue()

    async def register_player(self, player: AirPlayPlayer) -> None:
        self.registered[player.player_id] = player

    async def unregister_player(self, player_id: str) -> None:
        self.unregistered.append(player_id)
        self.registered.pop(player_id, None)

    def update_player(self, player: AirPlayPlayer) -> None:
        self.updates.append(player.player_id)

    def get_provider_config_value(self, key: str) -> ConfigValueType:
        return None

    def get_player_config_values(self, player_id: str) -> Mapping[str, ConfigValueType]:
        return self.values.get(player_id, {})

    async def set_player_config_value(
        self, player_id: str, key: str, value: ConfigValueType
    ) -> None:
        self.values.setdefault(player_id, {})[key] = value

    async def _silence(self) -> AsyncIterator[bytes]:
        yield b""

    def flow_audio_source(
        self, player_id: str, media: PlayerMedia, sample_rate: int = 44100
    ) -> AsyncIterator[bytes]:
        return self._silence()

    def _record(self, name: str, player_id: str, value: int | None = None) -> None:
        self.calls.put_nowait((name, player_id, value))

    async def cmd_play(self, player_id: str) -> None:
        self._record("play", player_id)

    async def cmd_pause(self, player_id: str) -> None:
        self._record("pause", player_id)

    async def cmd_play_pause(self, player_id: str) -> None:
        self._record("play_pause", player_id)

    async def cmd_stop(self, player_id: str) -> None:
        self._record("stop", player_id)

    async def cmd_next(self, player_id: str) -> None:
        self._record("next", player_id)

    async def cmd_previous(self, player_id: str) -> None:
        self._record("previous", player_id)

    async def cmd_volume_set(self, player_id: str, volume_level: int) -> None:
        self._record("volume_set", player_id, volume_level)

    def own_receiver_ports(self) -> Collection[int]:
        return self.own_ports

    async def next_call(self) -> Call:
        """The next command the provider gave (fails after a few seconds)."""
        async with asyncio.timeout(WAIT_S):
            return await self.calls.get()
