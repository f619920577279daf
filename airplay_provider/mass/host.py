"""MassHost: the `ProviderHost` table made real on top of Music Assistant's server object."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from typing import TYPE_CHECKING, Final

from music_assistant_models.config_entries import ConfigValueType
from music_assistant_models.enums import ConfigEntryType, ContentType
from music_assistant_models.media_items import AudioFormat

from airplay_provider.config import player_config_entries
from airplay_provider.host_api import (
    FLOW_PCM_BYTES_PER_SAMPLE,
    FLOW_PCM_CHANNELS,
    FLOW_PCM_SAMPLE_RATE,
)

if TYPE_CHECKING:
    import logging

    from music_assistant_models.player import PlayerMedia

    from airplay_provider.mass.provider import MassAirPlayProvider
    from airplay_provider.player import AirPlayPlayer

#: What `mass.streams.get_stream` delivers to the sessions: f32le 44.1 kHz stereo.
FLOW_PCM_FORMAT: Final = AudioFormat(
    content_type=ContentType.PCM_F32LE,
    sample_rate=FLOW_PCM_SAMPLE_RATE,
    bit_depth=FLOW_PCM_BYTES_PER_SAMPLE * 8,
    channels=FLOW_PCM_CHANNELS,
)


def flow_pcm_format(sample_rate: int) -> AudioFormat:
    """`FLOW_PCM_FORMAT` at another rate (48 kHz: hi-res groups)."""
    if sample_rate == FLOW_PCM_SAMPLE_RATE:
        return FLOW_PCM_FORMAT
    return AudioFormat(
        content_type=ContentType.PCM_F32LE,
        sample_rate=sample_rate,
        bit_depth=FLOW_PCM_BYTES_PER_SAMPLE * 8,
        channels=FLOW_PCM_CHANNELS,
    )


#: Music Assistant's own AirPlay receiver provider (its shairport-sync): never a player.
RECEIVER_DOMAIN: Final = "airplay_receiver"
#: Keys whose values Music Assistant keeps encrypted (SECURE_STRING entries).
SECRET_KEYS: Final = frozenset(
    e.key for e in player_config_entries() if e.type is ConfigEntryType.SECURE_STRING
)
_STORED_KEYS: Final = tuple(e.key for e in player_config_entries(include_enabled=True))


class MassHost:
    """Each `ProviderHost` call mapped onto Music Assistant (table in `host_api`)."""

    def __init__(self, provider: MassAirPlayProvider) -> None:
        self._provider = provider
        self._mass = provider.mass

    @property
    def instance_id(self) -> str:
        """The provider instance id Music Assistant gave us."""
        return self._provider.instance_id

    @property
    def logger(self) -> logging.Logger:
        """The provider's logger (its level follows the provider's log-level setting)."""
        return self._provider.logger

    async def register_player(self, player: AirPlayPlayer) -> None:
        """Wrap the player in a Music Assistant `Player` and register it."""
        await self._provider.register_core_player(player)

    async def unregister_player(self, player_id: str) -> None:
        """The receiver left: Music Assistant forgets the player (its settings stay)."""
        await self._provider.unregister_core_player(player_id)

    def update_player(self, player: AirPlayPlayer) -> None:
        """Copy the player's state into its Music Assistant player and signal the core."""
        self._provider.refresh_player(player.player_id)

    def get_provider_config_value(self, key: str) -> ConfigValueType:
        """A value of this provider instance's settings."""
        return self._provider.config.get_value(key)

    def get_player_config_values(self, player_id: str) -> Mapping[str, ConfigValueType]:
        """Stored values of our per-player keys (secrets decrypted); absent keys omitted."""
        config = self._mass.config
        values: dict[str, ConfigValueType] = {}
        for key in _STORED_KEYS:
            raw = config.get_raw_player_config_value(player_id, key)
            if raw is None:
                continue
            if key in SECRET_KEYS and isinstance(raw, str):
                raw = config.decrypt_string(raw)
            values[key] = raw
        return values

    async def set_player_config_value(
        self, player_id: str, key: str, value: ConfigValueType
    ) -> None:
        """Store one value in the player's settings (secrets encrypted, as the UI would)."""
        config = self._mass.config
        if key in SECRET_KEYS and isinstance(value, str) and value:
            value = config.encrypt_string(value)
        try:
            config.set_raw_player_config_value(player_id, key, value)
        except KeyError:
            self.logger.warning("%s has no settings yet; %s not stored", player_id, key)

    def flow_audio_source(
        self, player_id: str, media: PlayerMedia, sample_rate: int = FLOW_PCM_SAMPLE_RATE
    ) -> AsyncIterator[bytes]:
        """The queue's flow-mode PCM for `media`, from Music Assistant's stream controller
        (f32le stereo at `sample_rate`: 48 kHz for a hi-res group)."""
        return self._mass.streams.get_stream(media, flow_pcm_format(sample_rate), player_id)

    async def cmd_play(self, player_id: str) -> None:
        """Remote play: Music Assistant resumes the player or its queue."""
        await self._mass.players.cmd_play(player_id)

    async def cmd_pause(self, player_id: str) -> None:
        """Remote pause: through the queue when one is active."""
        await self._mass.players.cmd_pause(player_id)

    async def cmd_play_pause(self, player_id: str) -> None:
        """Remote play/pause toggle."""
        await self._mass.players.cmd_play_pause(player_id)

    async def cmd_stop(self, player_id: str) -> None:
        """Remote stop (also: the device started playing something else)."""
        await self._mass.players.cmd_stop(player_id)

    async def cmd_next(self, player_id: str) -> None:
        """Remote next: acts on Music Assistant's queue."""
        await self._mass.players.cmd_next_track(player_id)

    async def cmd_previous(self, player_id: str) -> None:
        """Remote previous: acts on Music Assistant's queue."""
        await self._mass.players.cmd_previous_track(player_id)

    async def cmd_volume_set(self, player_id: str, volume_level: int) -> None:
        """Volume buttons / device volume: Music Assistant's volume command."""
        await self._mass.players.cmd_volume_set(player_id, volume_level)

    def own_receiver_ports(self) -> Collection[int]:
        """Ports of Music Assistant's own AirPlay receivers (skipped by discovery)."""
        ports: list[int] = []
        for prov in self._mass.get_provider_instances(RECEIVER_DOMAIN):
            port = getattr(prov, "airplay_port", None)
            if isinstance(port, int):
                ports.append(port)
        return ports
