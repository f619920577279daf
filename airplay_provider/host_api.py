"""The small typed interface between the provider and whatever hosts it.

Music Assistant's server cannot be installed here, so the provider never touches it directly:
it talks to a `ProviderHost`. The standalone `airplay-provider` command implements one; inside
Music Assistant an adapter maps each call onto the server's PlayerProvider API:

==============================================  =================================================
ProviderHost                                    Music Assistant (PlayerProvider / `mass`)
==============================================  =================================================
``instance_id``                                 ``provider.instance_id``
``logger``                                      ``provider.logger``
``register_player(player)``                     ``await mass.players.register(player)``
``unregister_player(player_id)``                ``mass.players.unregister(player_id)``
``update_player(player)``                       ``player.update_state()`` (signals the core)
``get_provider_config_value(key)``              ``provider.config.get_value(key)``
``get_player_config_values(player_id)``         ``mass.config.get_raw_player_config_value(...)``
                                                per key (defaults from `player_config_entries`)
``set_player_config_value(id, key, value)``     ``mass.config.set_raw_player_config_value(...)``
``flow_audio_source(player_id, media)``         ``mass.streams.get_stream(media, AIRPLAY_FLOW_
                                                PCM_FORMAT)`` — the flow-mode PCM of the queue
``cmd_play/pause/play_pause/stop(player_id)``   ``mass.players.cmd_play/cmd_pause/...``
``cmd_next/cmd_previous(player_id)``            ``mass.players.cmd_next_track/...previous_track``
``cmd_volume_set(player_id, level)``            ``mass.players.cmd_volume_set(player_id, level)``
``own_receiver_ports()``                        ``airplay_port`` of every ``airplay_receiver``
                                                provider instance (MA's own shairport-sync)
==============================================  =================================================

The provider side of the contract (what a host calls on `AirPlayProvider`) mirrors
PlayerProvider too: ``handle_async_init``, ``unload``, ``on_mdns_service_state_change`` and the
player commands ``play_media``, ``cmd_play``, ``cmd_pause``, ``cmd_stop``, ``cmd_volume_set``,
``set_members``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection, Mapping
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from music_assistant_models.config_entries import ConfigValueType

if TYPE_CHECKING:
    from music_assistant_models.player import PlayerMedia

    from airplay_provider.player import AirPlayPlayer

#: Format of `flow_audio_source` chunks: f32le, 44 100 Hz, 2 channels, interleaved (48 kHz
#: when the session asks for it: hi-res groups).
FLOW_PCM_SAMPLE_RATE: Final = 44100
FLOW_PCM_CHANNELS: Final = 2
FLOW_PCM_BYTES_PER_SAMPLE: Final = 4


@runtime_checkable
class ProviderHost(Protocol):
    """What the provider needs from its host (Music Assistant or the standalone CLI)."""

    @property
    def instance_id(self) -> str:
        """Id of this provider instance (players can only group within it)."""
        ...

    @property
    def logger(self) -> logging.Logger:
        """Logger the provider writes to."""
        ...

    async def register_player(self, player: AirPlayPlayer) -> None:
        """A receiver was discovered and is now a player."""
        ...

    async def unregister_player(self, player_id: str) -> None:
        """A receiver left the network: the player goes away."""
        ...

    def update_player(self, player: AirPlayPlayer) -> None:
        """The player's state or identity changed; refresh the host's view."""
        ...

    def get_provider_config_value(self, key: str) -> ConfigValueType:
        """Provider-level setting (see `config.provider_config_entries`)."""
        ...

    def get_player_config_values(self, player_id: str) -> Mapping[str, ConfigValueType]:
        """Stored per-player settings (missing keys mean defaults)."""
        ...

    async def set_player_config_value(
        self, player_id: str, key: str, value: ConfigValueType
    ) -> None:
        """Persist one per-player value (pairing credentials, for example)."""
        ...

    def flow_audio_source(
        self, player_id: str, media: PlayerMedia, sample_rate: int = FLOW_PCM_SAMPLE_RATE
    ) -> AsyncIterator[bytes]:
        """The continuous PCM stream for `media` (f32le stereo at `sample_rate`: 44100, or
        48000 for a hi-res group), flow mode."""
        ...

    async def cmd_play(self, player_id: str) -> None:
        """Remote control asked to play."""
        ...

    async def cmd_pause(self, player_id: str) -> None:
        """Remote control asked to pause."""
        ...

    async def cmd_play_pause(self, player_id: str) -> None:
        """Remote control toggled play/pause."""
        ...

    async def cmd_stop(self, player_id: str) -> None:
        """Remote control asked to stop."""
        ...

    async def cmd_next(self, player_id: str) -> None:
        """Remote control asked for the next track."""
        ...

    async def cmd_previous(self, player_id: str) -> None:
        """Remote control asked for the previous track."""
        ...

    async def cmd_volume_set(self, player_id: str, volume_level: int) -> None:
        """The device reported a new volume (0..100)."""
        ...

    def own_receiver_ports(self) -> Collection[int]:
        """Ports of AirPlay receivers this host runs for itself (ignored in discovery)."""
        ...
