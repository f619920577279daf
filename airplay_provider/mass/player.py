"""MassAirPlayPlayer: one receiver as Music Assistant's `Player` (2.8 model, `_attr_*` state).

State lives in the core `AirPlayPlayer` (driven by the sessions); `refresh()` copies it into the
`_attr_*` fields and `update_state()` tells the core. Commands go to `AirPlayProvider`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Final

from music_assistant.models.player import Player
from music_assistant_models.config_entries import (
    MULTI_VALUE_SPLITTER,
    ConfigEntry,
    ConfigValueType,
)
from music_assistant_models.enums import (
    ConfigEntryType,
    IdentifierType,
    PlaybackState,
    PlayerType,
)
from music_assistant_models.errors import PlayerCommandFailed
from music_assistant_models.player import DeviceInfo, PlayerMedia

from airplay_provider.audio_source import AudioSourceError
from airplay_provider.config import CONF_ENABLE_LATE_JOIN, PAIRING_ACTIONS, enabled_by_default
from airplay_provider.session.players import PlaybackError, player_format

if TYPE_CHECKING:
    from airplay_provider.mass.provider import MassAirPlayProvider
    from airplay_provider.player import AirPlayPlayer
    from airplay_provider.provider import AirPlayProvider

#: Cache category of a player's last volume (the built-in AirPlay provider uses 1 as well).
CACHE_CATEGORY_VOLUME: Final = 1

#: Music Assistant adds HTTP-streaming entries for player domains it does not know; none of
#: them applies to an AirPlay stream (fixed 44.1 kHz/16-bit PCM over RTP), so they are hidden.
_HTTP_ONLY_ENTRIES: Final = (
    ("sample_rates", ConfigEntryType.SPLITTED_STRING, [f"44100{MULTI_VALUE_SPLITTER}16"], True),
    ("output_codec", ConfigEntryType.STRING, "flac", False),
    ("http_profile", ConfigEntryType.STRING, "no_content_length", False),
    ("enable_icy_metadata", ConfigEntryType.STRING, "disabled", False),
)


def hidden_http_entries() -> list[ConfigEntry]:
    """Hidden stand-ins for Music Assistant's HTTP-only player entries (same keys)."""
    return [
        ConfigEntry(
            key=key,
            type=entry_type,
            label=key,
            default_value=default,
            multi_value=multi,
            required=False,
            hidden=True,
        )
        for key, entry_type, default, multi in _HTTP_ONLY_ENTRIES
    ]


def without_value_condition(entry: ConfigEntry) -> ConfigEntry:
    """`entry` without its `depends_on` value condition (a copy; unchanged when it has none).

    Music Assistant shows a protocol player's entries inside its universal player and replaces
    each `depends_on` with that protocol's "enabled" toggle, keeping the value condition: the
    toggle (True == 1) is then compared with our protocol choice and the entry stays greyed out.
    """
    if entry.depends_on_value is None and entry.depends_on_value_not is None:
        return entry
    return dataclasses.replace(
        entry, depends_on=None, depends_on_value=None, depends_on_value_not=None
    )


def user_message(error: str) -> str:
    """A streamer's error with what a Music Assistant user can do about it."""
    if "requires a password" in error:
        return f"{error}: enter it as 'Device password' in this player's settings"
    if "rejected the password" in error:
        return f"{error}: check 'Device password' in this player's settings"
    if "verify pairing failed" in error or "pair-verify" in error:
        return f"{error}: the stored pairing is no longer valid; 'Reset pairing', then pair again"
    return error


class MassAirPlayPlayer(Player):
    """A Music Assistant player backed by one core `AirPlayPlayer`."""

    def __init__(self, provider: MassAirPlayProvider, core_player: AirPlayPlayer) -> None:
        """Identity is set before the base class creates the player's default config."""
        self.core_player = core_player
        self._attr_type = core_player.player_type
        self._attr_name = core_player.name
        self._attr_enabled_by_default = enabled_by_default(core_player.device)
        super().__init__(provider, core_player.player_id)
        self._mass_provider = provider
        self._attr_can_group_with = {provider.instance_id}
        self.refresh()

    @property
    def core(self) -> AirPlayProvider:
        """The protocol-level provider that runs our sessions."""
        return self._mass_provider.core

    @property
    def requires_flow_mode(self) -> bool:
        """One continuous stream per session: Music Assistant's queue flow mode."""
        return True

    def refresh(self) -> None:
        """Copy the core player's identity and state into the `_attr_*` fields."""
        core = self.core_player
        state = core.state
        self._attr_name = core.name
        self._attr_type = core.player_type
        self._attr_available = (
            state.available and core.address is not None and not core.needs_pairing
        )
        info = DeviceInfo(
            model=core.device.model or "AirPlay receiver",
            manufacturer=core.device.manufacturer or "Unknown",
            model_id=core.device.model_id,
        )
        info.add_identifier(IdentifierType.MAC_ADDRESS, core.mac_address)
        if core.address:
            info.add_identifier(IdentifierType.IP_ADDRESS, core.address)
        self._attr_device_info = info
        self._attr_supported_features = set(core.supported_features)
        self._attr_playback_state = state.playback_state
        self._attr_volume_level = state.volume_level
        self._attr_elapsed_time = state.elapsed_time
        self._attr_elapsed_time_last_updated = state.elapsed_time_last_updated
        members = [m for m in state.group_members if m != self.player_id]
        self._attr_group_members = [self.player_id, *members] if members else []
        if state.playback_state is PlaybackState.IDLE:
            self._attr_current_media = None
        elif state.current_media is not None:
            self._attr_current_media = state.current_media
        self._show_format()

    def _show_format(self) -> None:
        """`audio_format` (and `audio_format_note`, why not hi-res) in the player's extra
        attributes: what its stream plays, or what the next one would."""
        found = self.core.playback.session_of(self.player_id)
        shown, note = player_format(self.core_player, found[1] if found else None)
        extras = self.extra_attributes
        for key, value in (("audio_format", shown), ("audio_format_note", note)):
            if value is None:
                extras.pop(key, None)
            else:
                extras[key] = value

    def _settings_from_mass(self) -> None:
        """Re-read this player's stored settings (so changes apply to the next play)."""
        self.core.reload_player_settings(self.player_id)

    # ---- commands ----------------------------------------------------------------------

    async def play_media(self, media: PlayerMedia) -> None:
        """Start a flow-mode session of Music Assistant's queue on this player's group."""
        self._settings_from_mass()
        for member_id in self.core_player.state.group_members:
            if member_id != self.player_id:
                self.core.reload_player_settings(member_id)
        try:
            await self.core.play_media(self.player_id, media)
        except PlaybackError as err:
            raise PlayerCommandFailed(user_message(str(err))) from err
        self._mass_provider.refresh_player(self.player_id)

    async def play_announcement(
        self, announcement: PlayerMedia, volume_level: int | None = None
    ) -> None:
        """PLAY_ANNOUNCEMENT: mixed over the group's music (ducked) while it plays, else played
        alone at `volume_level`; returns once it was heard."""
        try:
            await self.core.play_announcement(self.player_id, announcement, volume_level)
        except (PlaybackError, AudioSourceError) as err:
            raise PlayerCommandFailed(user_message(str(err))) from err
        finally:
            self._mass_provider.refresh_player(self.player_id)

    async def play(self) -> None:
        """Resume a paused group on one new timeline."""
        await self.core.cmd_play(self.player_id)

    async def pause(self) -> None:
        """Pause the group (members keep their unplayed audio and stay aligned)."""
        await self.core.cmd_pause(self.player_id)

    async def stop(self) -> None:
        """Stop the session the player is in."""
        await self.core.cmd_stop(self.player_id)
        self.refresh()
        self._attr_current_media = None
        self.update_state()

    async def volume_set(self, volume_level: int) -> None:
        """Set the receiver's volume (sent to a running stream at once); kept across restarts."""
        await self.core.cmd_volume_set(self.player_id, volume_level)
        await self.mass.cache.set(
            key=self.player_id,
            data=self.core_player.state.volume_level,
            provider=self.provider_id,
            category=CACHE_CATEGORY_VOLUME,
            persistent=True,
        )

    async def set_members(
        self,
        player_ids_to_add: list[str] | None = None,
        player_ids_to_remove: list[str] | None = None,
    ) -> None:
        """Change the sync group: late join (or a restart when late join is off)."""
        running = self.core.playback.session_of(self.player_id) is not None
        late_join = self._mass_provider.config.get_value(CONF_ENABLE_LATE_JOIN) is not False
        restart = running and bool(player_ids_to_add) and not late_join
        if restart:
            await self.core.cmd_stop(self.player_id)
        for member_id in player_ids_to_add or []:
            self.core.reload_player_settings(member_id)
        try:
            await self.core.set_members(self.player_id, player_ids_to_add, player_ids_to_remove)
        except (PlaybackError, KeyError) as err:
            raise PlayerCommandFailed(str(err)) from err
        self._mass_provider.refresh_player(self.player_id)
        if restart:
            # Late join off: the whole group restarts where the queue is (as a new stream).
            self.mass.create_task(self.mass.players.cmd_resume(self.player_id))

    # ---- settings ----------------------------------------------------------------------

    async def get_config_entries(
        self,
        action: str | None = None,
        values: dict[str, ConfigValueType] | None = None,
    ) -> list[ConfigEntry]:
        """Our per-player entries; pairing actions run here and store credentials hidden."""
        if action in PAIRING_ACTIONS:
            entries = await self.core.handle_player_config_action(self.player_id, action, values)
        else:
            entries = self.core.get_player_config_entries(self.player_id)
        if self.core_player.player_type is PlayerType.PROTOCOL:
            entries = [without_value_condition(entry) for entry in entries]
        return [*entries, *hidden_http_entries()]

    async def on_config_updated(self) -> None:
        """Settings changed (or the player was registered): apply them from now on."""
        self._settings_from_mass()

    async def on_unload(self) -> None:
        """Music Assistant dropped the player: it leaves any session it plays in."""
        await super().on_unload()
        if self.core.get_player(self.player_id) is not None:
            await self.core.playback.leave(self.player_id)

    def _on_player_media_updated(self) -> None:
        """A new track of the flow stream: receivers show its title, artwork and progress."""
        media = self.state.current_media
        if media is None or self.core.get_player(self.player_id) is None:
            return
        elapsed = media.corrected_elapsed_time
        self.mass.create_task(self.core.update_media(self.player_id, media, elapsed))
