"""Stand-in for music_assistant.models.player (2.8-dev `Player`: `_attr_*` + `update_state`).

Same member names, signatures and @final marks as the real base class; the final state is a
`music_assistant_models.player.Player` snapshot, as in the server.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC
from typing import TYPE_CHECKING, Any, final

from music_assistant_models.enums import MediaType, PlaybackState, PlayerFeature, PlayerType
from music_assistant_models.player import (
    DeviceInfo,
    OutputProtocol,
    PlayerMedia,
    PlayerOption,
    PlayerOptionValueType,
    PlayerSoundMode,
    PlayerSource,
)
from music_assistant_models.player import Player as PlayerState
from music_assistant_models.unique_list import UniqueList

from music_assistant.models.strict import check_overrides

if TYPE_CHECKING:
    from music_assistant_models.config_entries import ConfigEntry, ConfigValueType, PlayerConfig

    from music_assistant.models.player_provider import PlayerProvider

_STATE_FIELDS = (
    "name",
    "available",
    "type",
    "supported_features",
    "playback_state",
    "elapsed_time",
    "volume_level",
    "group_members",
    "synced_to",
    "current_media",
    "device_info",
    "can_group_with",
)


class Player(ABC):
    """Base of every provider's player."""

    _attr_type: PlayerType = PlayerType.PLAYER
    _attr_supported_features: set[PlayerFeature]
    _attr_group_members: list[str]
    _attr_static_group_members: list[str]
    _attr_device_info: DeviceInfo
    _attr_can_group_with: set[str]
    _attr_source_list: list[PlayerSource]
    _attr_sound_mode_list: list[PlayerSoundMode]
    _attr_options: list[PlayerOption]
    _attr_available: bool = True
    _attr_name: str | None = None
    _attr_powered: bool | None = None
    _attr_playback_state: PlaybackState = PlaybackState.IDLE
    _attr_volume_level: int | None = None
    _attr_volume_muted: bool | None = None
    _attr_elapsed_time: float | None = None
    _attr_elapsed_time_last_updated: float | None = None
    _attr_active_source: str | None = None
    _attr_active_sound_mode: str | None = None
    _attr_current_media: PlayerMedia | None = None
    _attr_needs_poll: bool = False
    _attr_poll_interval: int = 30
    _attr_hidden_by_default: bool = False
    _attr_expose_to_ha_by_default: bool = True
    _attr_enabled_by_default: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Stand-in strictness: overrides keep the base signatures; final stays final."""
        super().__init_subclass__(**kwargs)
        check_overrides(Player, cls)

    def __setattr__(self, name: str, value: Any) -> None:
        """Stand-in strictness: only the `_attr_*` fields the real base declares."""
        if name.startswith("_attr_") and name not in Player.__annotations__:
            raise AttributeError(f"Music Assistant's Player has no field {name}")
        super().__setattr__(name, value)

    def __init__(self, provider: PlayerProvider, player_id: str) -> None:
        """Create the default config entry, then the first state snapshot."""
        self.mass = provider.mass
        self.logger = provider.logger
        self._attr_supported_features = set()
        self._attr_group_members = []
        self._attr_static_group_members = []
        self._attr_device_info = DeviceInfo()
        self._attr_can_group_with = set()
        self._attr_source_list = []
        self._attr_sound_mode_list = []
        self._attr_options = []
        self._player_id = player_id
        self._provider = provider
        self.mass.config.create_default_player_config(
            player_id, self.provider_id, self.type, self.name, self.enabled_by_default
        )
        self._config = self.mass.config.get_base_player_config(player_id, self.provider_id)
        self._extra_data: dict[str, Any] = {}
        self._extra_attributes: dict[str, Any] = {}
        self._initialized = asyncio.Event()
        self._state = PlayerState(
            player_id=player_id,
            provider=self.provider_id,
            type=self.type,
            name=self.display_name,
            available=self.available,
            device_info=self.device_info,
            supported_features=self.supported_features,
            playback_state=self.playback_state,
        )

    # ---- provider-set state ------------------------------------------------------------

    @property
    def available(self) -> bool:
        """`_attr_available`."""
        return self._attr_available

    @property
    def type(self) -> PlayerType:
        """`_attr_type`."""
        return self._attr_type

    @property
    def name(self) -> str | None:
        """`_attr_name`."""
        return self._attr_name

    @property
    def supported_features(self) -> set[PlayerFeature]:
        """`_attr_supported_features`."""
        return self._attr_supported_features

    @property
    def playback_state(self) -> PlaybackState:
        """`_attr_playback_state`."""
        return self._attr_playback_state

    @property
    def requires_flow_mode(self) -> bool:
        """Flow mode unless the player can enqueue."""
        return PlayerFeature.ENQUEUE not in self.supported_features

    @property
    def device_info(self) -> DeviceInfo:
        """`_attr_device_info`."""
        return self._attr_device_info

    @property
    def elapsed_time(self) -> float | None:
        """`_attr_elapsed_time`."""
        return self._attr_elapsed_time

    @property
    def elapsed_time_last_updated(self) -> float | None:
        """`_attr_elapsed_time_last_updated`."""
        return self._attr_elapsed_time_last_updated

    @property
    def needs_poll(self) -> bool:
        """`_attr_needs_poll`."""
        return self._attr_needs_poll

    @property
    def poll_interval(self) -> int:
        """`_attr_poll_interval`."""
        return self._attr_poll_interval

    @property
    def hidden_by_default(self) -> bool:
        """`_attr_hidden_by_default`."""
        return self._attr_hidden_by_default

    @property
    def expose_to_ha_by_default(self) -> bool:
        """`_attr_expose_to_ha_by_default`."""
        return self._attr_expose_to_ha_by_default

    @property
    def enabled_by_default(self) -> bool:
        """`_attr_enabled_by_default`."""
        return self._attr_enabled_by_default

    @property
    def static_group_members(self) -> list[str]:
        """`_attr_static_group_members`."""
        return self._attr_static_group_members

    @property
    def powered(self) -> bool | None:
        """`_attr_powered`."""
        return self._attr_powered

    @property
    def volume_level(self) -> int | None:
        """`_attr_volume_level`."""
        return self._attr_volume_level

    @property
    def volume_muted(self) -> bool | None:
        """`_attr_volume_muted`."""
        return self._attr_volume_muted

    @property
    def active_source(self) -> str | None:
        """`_attr_active_source`."""
        return self._attr_active_source

    @property
    def group_members(self) -> list[str]:
        """`_attr_group_members` (leader first when not empty)."""
        return self._attr_group_members

    @property
    def can_group_with(self) -> set[str]:
        """`_attr_can_group_with`."""
        return self._attr_can_group_with

    @property
    def synced_to(self) -> str | None:
        """The leader whose group lists this player."""
        if self.group_members and self.group_members[0] != self.player_id:
            return self.group_members[0]
        for player in self.mass.players.all_players(
            return_unavailable=False, return_protocol_players=True
        ):
            if player.player_id != self.player_id and self.player_id in player.group_members:
                return player.player_id
        return None

    @property
    def current_media(self) -> PlayerMedia | None:
        """`_attr_current_media`."""
        return self._attr_current_media

    @property
    def source_list(self) -> list[PlayerSource]:
        """`_attr_source_list`."""
        return self._attr_source_list

    @property
    def active_sound_mode(self) -> str | None:
        """`_attr_active_sound_mode`."""
        return self._attr_active_sound_mode

    @property
    def sound_mode_list(self) -> UniqueList[PlayerSoundMode]:
        """`_attr_sound_mode_list`."""
        return UniqueList(self._attr_sound_mode_list)

    @property
    def options(self) -> UniqueList[PlayerOption]:
        """`_attr_options`."""
        return UniqueList(self._attr_options)

    # ---- commands (overridden by providers) --------------------------------------------

    async def power(self, powered: bool) -> None:
        """POWER."""
        raise NotImplementedError

    async def volume_set(self, volume_level: int) -> None:
        """VOLUME_SET."""
        raise NotImplementedError

    async def volume_mute(self, muted: bool) -> None:
        """VOLUME_MUTE."""
        raise NotImplementedError

    async def play(self) -> None:
        """PLAY."""
        raise NotImplementedError

    async def stop(self) -> None:
        """STOP."""
        raise NotImplementedError

    async def pause(self) -> None:
        """PAUSE."""
        raise NotImplementedError

    async def next_track(self) -> None:
        """NEXT_PREVIOUS."""
        raise NotImplementedError

    async def previous_track(self) -> None:
        """NEXT_PREVIOUS."""
        raise NotImplementedError

    async def seek(self, position: int) -> None:
        """SEEK."""
        raise NotImplementedError

    async def play_media(
        self,
        media: PlayerMedia,
    ) -> None:
        """PLAY_MEDIA."""
        raise NotImplementedError

    async def on_protocol_playback(
        self,
        output_protocol: OutputProtocol,
    ) -> None:
        """Protocol playback started (optional)."""
        return

    async def enqueue_next_media(self, media: PlayerMedia) -> None:
        """ENQUEUE."""
        raise NotImplementedError

    async def play_announcement(
        self, announcement: PlayerMedia, volume_level: int | None = None
    ) -> None:
        """PLAY_ANNOUNCEMENT."""
        raise NotImplementedError

    async def select_source(self, source: str) -> None:
        """SELECT_SOURCE."""
        raise NotImplementedError

    async def select_sound_mode(self, sound_mode: str) -> None:
        """SELECT_SOUND_MODE."""
        raise NotImplementedError

    async def set_option(self, option_key: str, option_value: PlayerOptionValueType) -> None:
        """OPTIONS."""
        raise NotImplementedError

    async def set_members(
        self,
        player_ids_to_add: list[str] | None = None,
        player_ids_to_remove: list[str] | None = None,
    ) -> None:
        """SET_MEMBERS."""
        raise NotImplementedError

    async def poll(self) -> None:
        """Polling (needs_poll)."""
        raise NotImplementedError

    async def get_config_entries(
        self,
        action: str | None = None,
        values: dict[str, ConfigValueType] | None = None,
    ) -> list[ConfigEntry]:
        """Player-specific entries."""
        return []

    async def on_config_updated(self) -> None:
        """Config loaded or changed."""
        return

    async def on_unload(self) -> None:  # noqa: B027
        """Unregistered."""

    async def group_with(self, target_player_id: str) -> None:
        """Join the target's group."""
        target = self.mass.players.get_player(target_player_id, raise_unavailable=True)
        assert target is not None
        await target.set_members(player_ids_to_add=[self.player_id])

    async def ungroup(self) -> None:
        """Leave (or dissolve) the group."""
        if self.synced_to:
            if leader := self.mass.players.get_player(self.synced_to):
                await leader.set_members(player_ids_to_remove=[self.player_id])
        elif self.group_members:
            await self.set_members(player_ids_to_remove=self.group_members)

    def _on_player_media_updated(self) -> None:  # noqa: B027
        """The final current media changed (optional hook)."""

    # ---- core-managed (final) ----------------------------------------------------------

    @property
    @final
    def player_id(self) -> str:
        """Id."""
        return self._player_id

    @property
    @final
    def provider(self) -> PlayerProvider:
        """Provider instance."""
        return self._provider

    @property
    @final
    def provider_id(self) -> str:
        """Provider instance id."""
        return self._provider.instance_id

    @property
    @final
    def config(self) -> PlayerConfig:
        """Current config."""
        return self._config

    @property
    @final
    def extra_attributes(self) -> dict[str, Any]:
        """API extras."""
        return self._extra_attributes

    @property
    @final
    def extra_data(self) -> dict[str, Any]:
        """Private extras."""
        return self._extra_data

    @property
    @final
    def display_name(self) -> str:
        """Custom name, else name, else id."""
        return self._config.name or self.name or self._config.default_name or self.player_id

    @property
    @final
    def enabled(self) -> bool:
        """Config enabled flag."""
        return self._config.enabled

    @property
    @final
    def initialized(self) -> asyncio.Event:
        """Set once registered."""
        return self._initialized

    @property
    def corrected_elapsed_time(self) -> float | None:
        """Elapsed time advanced to now while playing."""
        if self.elapsed_time is None or self.elapsed_time_last_updated is None:
            return None
        if self.playback_state == PlaybackState.PLAYING:
            return self.elapsed_time + (time.time() - self.elapsed_time_last_updated)
        return self.elapsed_time

    @property
    @final
    def state(self) -> PlayerState:
        """The final state snapshot."""
        return self._state

    @final
    def update_state(self, force_update: bool = False, signal_event: bool = True) -> None:
        """Recompute the snapshot; signal the controller when something changed."""
        self.mass.verify_event_loop_thread("player.update_state")
        before = {f: getattr(self._state, f) for f in _STATE_FIELDS}
        old_media = self._media_key()
        state = self._state
        state.name = self.display_name
        state.available = self.available
        state.type = self.type
        state.supported_features = set(self.supported_features)
        state.playback_state = self.playback_state
        state.elapsed_time = self.elapsed_time
        state.elapsed_time_last_updated = self.elapsed_time_last_updated
        state.volume_level = self.volume_level
        state.group_members = UniqueList(self.group_members)
        state.synced_to = self.synced_to
        state.current_media = self.current_media
        state.device_info = self.device_info
        state.can_group_with = set(self.can_group_with)
        state.enabled = self.enabled
        changed = {
            f: (before[f], getattr(state, f))
            for f in _STATE_FIELDS
            if before[f] != getattr(state, f)
        }
        if old_media != self._media_key():
            self.mass.call_later(
                0.05, self._on_player_media_updated, task_id=f"media_{self.player_id}"
            )
        if (changed or force_update) and signal_event:
            self.mass.players.signal_player_state_update(self, changed)

    def _media_key(self) -> str:
        media = self._state.current_media
        if media is None:
            return ""
        return f"{media.uri}|{media.title}|{media.queue_item_id}|{media.image_url}"

    @final
    def set_current_media(
        self,
        uri: str,
        media_type: MediaType = MediaType.UNKNOWN,
        title: str | None = None,
        artist: str | None = None,
        album: str | None = None,
        image_url: str | None = None,
        duration: int | None = None,
        source_id: str | None = None,
        queue_item_id: str | None = None,
        custom_data: dict[str, Any] | None = None,
        clear_all: bool = False,
    ) -> None:
        """Fill `_attr_current_media`."""
        if self._attr_current_media is None or clear_all:
            self._attr_current_media = PlayerMedia(uri=uri, media_type=media_type)
        media = self._attr_current_media
        media.uri = uri
        media.title = title or media.title
        media.artist = artist or media.artist
        media.album = album or media.album
        media.image_url = image_url or media.image_url
        media.duration = duration or media.duration
        media.source_id = source_id or media.source_id
        media.queue_item_id = queue_item_id or media.queue_item_id
        media.custom_data = custom_data or media.custom_data

    @final
    def set_config(self, config: PlayerConfig) -> None:
        """Controller-only: new config."""
        self._config = config

    @final
    def set_initialized(self) -> None:
        """Controller-only: registration done."""
        self._initialized.set()

    @final
    def to_dict(self) -> dict[str, Any]:
        """The state as the API sends it."""
        return self.state.to_dict()

    @final
    def supports_feature(self, feature: PlayerFeature) -> bool:
        """Feature test."""
        return feature in self.supported_features

    @final
    def check_feature(self, feature: PlayerFeature) -> None:
        """Raise when unsupported."""
        if not self.supports_feature(feature):
            raise NotImplementedError(f"{self.display_name} lacks {feature}")
