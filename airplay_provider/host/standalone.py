"""The standalone `ProviderHost`: what `airplay-provider play` runs the provider in.

Settings come from the user config file (read-only here, except pairing credentials), with
per-run overrides from the command line; the flow audio of a `PlayerMedia` is its `uri`
decoded by ffmpeg (a file, a URL, or "-" for stdin). Remote-control commands from receivers
(DACP) are applied to the provider directly: there is no queue, so next/previous only log.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from typing import TYPE_CHECKING, Final

from music_assistant_models.config_entries import ConfigValueType
from music_assistant_models.player import PlayerMedia

from airplay_provider.audio_source import decode_source
from airplay_provider.host.config_store import ConfigStore
from airplay_provider.host_api import FLOW_PCM_SAMPLE_RATE
from airplay_provider.player import AirPlayPlayer
from airplay_provider.protocol.txt import (
    RAOP_SERVICE_TYPE,
    DeviceRecord,
    merge_records,
    parse_service,
)

if TYPE_CHECKING:
    from airplay_provider.provider import AirPlayProvider

INSTANCE_ID: Final = "airplay_standalone"
_LOGGER = logging.getLogger("airplay_provider.standalone")


def manual_device(host: str, port: int, name: str | None = None) -> DeviceRecord:
    """A RAOP receiver given by address (no mDNS): a stable made-up MAC from host:port."""
    digest = hashlib.sha256(f"{host}:{port}".encode()).digest()
    mac = bytes([(digest[0] & 0xFC) | 0x02, *digest[1:6]]).hex().upper()  # locally administered
    label = name or f"{host}:{port}"
    record = parse_service(
        RAOP_SERVICE_TYPE,
        f"{mac}@{label}.{RAOP_SERVICE_TYPE}",
        port=port,
        addresses=[host],
        properties={b"md": b"0,1,2", b"tp": b"UDP", b"cn": b"0,1"},
    )
    return merge_records(record, None)


class StandaloneHost:
    """`ProviderHost` for the command line."""

    def __init__(
        self,
        store: ConfigStore | None = None,
        *,
        overrides: Mapping[str, Mapping[str, ConfigValueType]] | None = None,
        stdin_fd: int = 0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.overrides: dict[str, dict[str, ConfigValueType]] = {
            key: dict(values) for key, values in (overrides or {}).items()
        }
        self.stdin_fd = stdin_fd
        self._logger = logger or _LOGGER
        self.players: dict[str, AirPlayPlayer] = {}
        self.provider: AirPlayProvider | None = None
        self.on_update: Callable[[AirPlayPlayer], None] | None = None

    @property
    def instance_id(self) -> str:
        """One provider instance."""
        return INSTANCE_ID

    @property
    def logger(self) -> logging.Logger:
        """The provider's logger."""
        return self._logger

    async def register_player(self, player: AirPlayPlayer) -> None:
        """Keep the player."""
        self.players[player.player_id] = player

    async def unregister_player(self, player_id: str) -> None:
        """Forget the player."""
        self.players.pop(player_id, None)

    def update_player(self, player: AirPlayPlayer) -> None:
        """Tell the command (progress line) that something changed."""
        if self.on_update is not None:
            self.on_update(player)

    def get_provider_config_value(self, key: str) -> ConfigValueType:
        """Provider setting from the config file (None: default)."""
        return self.store.provider_values().get(key) if self.store else None

    def get_player_config_values(self, player_id: str) -> Mapping[str, ConfigValueType]:
        """Stored settings, with this run's overrides (by player id or by name) on top."""
        values = dict(self.store.player_values(player_id)) if self.store else {}
        values.update(self.overrides.get(player_id, {}))
        return values

    async def set_player_config_value(
        self, player_id: str, key: str, value: ConfigValueType
    ) -> None:
        """Persist one value (pairing credentials) in the config file."""
        if self.store is None:
            self.overrides.setdefault(player_id, {})[key] = value
            return
        self.store.set_player_values(player_id, {key: value})
        self.store.save()

    def flow_audio_source(
        self, player_id: str, media: PlayerMedia, sample_rate: int = FLOW_PCM_SAMPLE_RATE
    ) -> AsyncIterator[bytes]:
        """`media.uri` decoded by ffmpeg to flow PCM at `sample_rate` ("-" reads our stdin)."""
        return decode_source(media.uri, stdin_fd=self.stdin_fd, rate=sample_rate)

    async def cmd_play(self, player_id: str) -> None:
        """Remote: play (resume)."""
        if self.provider is not None:
            await self.provider.cmd_play(player_id)

    async def cmd_pause(self, player_id: str) -> None:
        """Remote: pause the group."""
        if self.provider is not None:
            await self.provider.cmd_pause(player_id)

    async def cmd_play_pause(self, player_id: str) -> None:
        """Remote: toggle."""
        if self.provider is None:
            return
        found = self.provider.playback.session_of(player_id)
        if found is not None and found[1].state == "paused":
            await self.provider.cmd_play(player_id)
        else:
            await self.provider.cmd_pause(player_id)

    async def cmd_stop(self, player_id: str) -> None:
        """Remote: stop."""
        if self.provider is not None:
            await self.provider.cmd_stop(player_id)

    async def cmd_next(self, player_id: str) -> None:
        """No queue here."""
        self._logger.info("next track: no queue in the standalone host")

    async def cmd_previous(self, player_id: str) -> None:
        """No queue here."""
        self._logger.info("previous track: no queue in the standalone host")

    async def cmd_volume_set(self, player_id: str, volume_level: int) -> None:
        """The device changed its volume: record it."""
        if self.provider is not None:
            await self.provider.cmd_volume_set(player_id, volume_level)

    def own_receiver_ports(self) -> Collection[int]:
        """The standalone host runs no receiver of its own."""
        return ()
