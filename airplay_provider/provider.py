"""AirPlayProvider: owns discovery and the players; the host-facing PlayerProvider surface.

Streaming goes through `session.players.GroupPlayback` (one StreamSession per group leader).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, MutableMapping
from typing import TYPE_CHECKING, Final

from music_assistant_models.config_entries import ConfigEntry, ConfigValueType
from music_assistant_models.player import PlayerMedia
from zeroconf import NonUniqueNameException, ServiceInfo, ServiceStateChange
from zeroconf.asyncio import AsyncZeroconf

from airplay_provider.config import (
    CONF_ENABLED,
    CONF_MDNS_INTERFACES,
    PlayerSettings,
    player_config_entries,
)
from airplay_provider.config_text import parse_interfaces
from airplay_provider.discovery import AirPlayDiscovery
from airplay_provider.host_api import ProviderHost
from airplay_provider.identity import new_dacp_id
from airplay_provider.pairing.manager import PairingManager
from airplay_provider.player import AirPlayPlayer, settings_from_values
from airplay_provider.protocol.txt import (
    AIRPLAY_SERVICE_TYPE,
    RAOP_SERVICE_TYPE,
    DeviceRecord,
    is_own_receiver,
)
from airplay_provider.session.announcing import MAX_ANNOUNCEMENT_S
from airplay_provider.session.players import ANNOUNCE_GRACE_S, GroupPlayback, PlaybackError
from airplay_provider.streamer_launcher import ForkServer

if TYPE_CHECKING:
    from airplay_provider.remote.control import RemoteControl

STREAMING_PENDING: Final = "streaming lands with the StreamSession"


class AirPlayProvider:
    """Discovers receivers, keeps one `AirPlayPlayer` per receiver, reports them to the host."""

    def __init__(
        self,
        host: ProviderHost,
        *,
        ap2_available: bool = True,
        browse: bool = True,
        zeroconf: AsyncZeroconf | None = None,
        interfaces: list[str] | None = None,
        dacp_id: str | None = None,
        launcher: ForkServer | None = None,
    ) -> None:
        """`browse=False` when the host browses mDNS itself and calls
        `on_mdns_service_state_change` (Music Assistant's core does).

        `interfaces` overrides the provider's `mdns_interfaces` setting (None: use it).
        `dacp_id`: the persistent DACP id (also the pairing identity); a random one when None,
        which breaks stored AirPlay 2 pairings on the next start. The DACP server is announced
        with `zeroconf`, or with an own instance when browsing; without either it stays off.
        `launcher`: fork streamers from this pre-imported parent instead of starting
        `bin/cliraop` (the standalone CLI does).
        """
        self.host = host
        self.ap2_available = ap2_available
        self._browse = browse
        self._zeroconf = zeroconf
        self._interfaces = interfaces
        self._players: dict[str, AirPlayPlayer] = {}
        self._discovery: AirPlayDiscovery | None = None
        self.dacp_id = dacp_id or new_dacp_id()
        self.remote_control: RemoteControl | None = None
        self.pairing = PairingManager(host, self.dacp_id)
        self.playback = GroupPlayback(
            self.get_player,
            host.flow_audio_source,
            host.update_player,
            dacp_id=self.dacp_id,
            logger=host.logger,
            launcher=launcher,
        )

    @property
    def instance_id(self) -> str:
        """The host's id for this provider instance."""
        return self.host.instance_id

    @property
    def players(self) -> Mapping[str, AirPlayPlayer]:
        """Registered players by id."""
        return dict(self._players)

    def get_player(self, player_id: str) -> AirPlayPlayer | None:
        """The player with this id, if registered."""
        return self._players.get(player_id)

    def _mdns_interfaces(self) -> list[str] | None:
        interfaces = self._interfaces
        if interfaces is None:
            setting = self.host.get_provider_config_value(CONF_MDNS_INTERFACES)
            interfaces = parse_interfaces(setting if isinstance(setting, str) else None)
        return interfaces

    async def handle_async_init(self, *, remote_control: bool = True) -> None:
        """Start discovery on the configured interfaces, then the DACP remote control.

        `remote_control=False`: the caller starts it later with `start_remote_control` (the
        `play` command does so once audio plays: loading aiohttp blocks the loop ~0.2 s).
        """
        interfaces = self._mdns_interfaces()
        own_ports: Collection[int] = self.host.own_receiver_ports()
        self._discovery = AirPlayDiscovery(
            self,
            interfaces=interfaces,
            zeroconf=self._zeroconf,
            ignore=lambda device: is_own_receiver(device, own_ports),
            logger=self.host.logger,
        )
        await self._discovery.start(browse=self._browse)
        if remote_control:
            await self.start_remote_control()

    async def start_remote_control(self) -> None:
        """Serve and announce DACP (remote buttons, volume) when mDNS is ours to use."""
        interfaces = self._mdns_interfaces()
        if self.remote_control is None and (self._zeroconf is not None or self._browse):
            # aiohttp loads only here: `play` and `discover` start faster without it.
            from airplay_provider.remote.control import RemoteControl  # noqa: PLC0415

            remote = RemoteControl(
                self, self.dacp_id, interfaces=interfaces, zeroconf=self._zeroconf
            )
            try:
                await remote.start()
            except NonUniqueNameException:
                self.host.logger.warning(
                    "DACP remote control unavailable: another sender on the network announces "
                    "our DACP id %s",
                    self.dacp_id,
                )
            except (OSError, TimeoutError) as err:
                self.host.logger.warning("DACP remote control unavailable: %s", err)
            else:
                self.remote_control = remote
                self.playback.tokens = remote

    async def unload(self, is_removed: bool = False) -> None:
        """Stop discovery and forget the players (the host keeps its own records)."""
        await self.playback.close()
        await self.pairing.close()
        if self.remote_control is not None:
            self.playback.tokens = None
            await self.remote_control.stop()
            self.remote_control = None
        if self._discovery is not None:
            await self._discovery.stop()
            self._discovery = None
        self._players.clear()

    def on_mdns_service_state_change(
        self, name: str, state_change: ServiceStateChange, info: ServiceInfo | None
    ) -> None:
        """Music Assistant's core feeds resolved mDNS services here (info None: removed)."""
        if self._discovery is None:
            return
        service_type = RAOP_SERVICE_TYPE if "._raop." in name.lower() else AIRPLAY_SERVICE_TYPE
        removed = state_change is ServiceStateChange.Removed
        self._discovery.handle_service(service_type, name, None if removed else info)

    async def wait_idle(self) -> None:
        """Wait until discovery events so far have been applied to the players."""
        if self._discovery is not None:
            await self._discovery.wait_idle()

    # --- discovery listener -------------------------------------------------------------

    async def device_added(self, device: DeviceRecord) -> None:
        """Create and register a player (unless the user disabled it)."""
        if device.player_id in self._players:
            await self.device_updated(device)
            return
        values = dict(self.host.get_player_config_values(device.player_id))
        enabled = values.pop(CONF_ENABLED, None)
        if enabled is False:
            self.host.logger.debug("%s is disabled; not registering it", device.name)
            return
        player = AirPlayPlayer(
            device,
            settings_from_values(values, device.name, self.host.logger),
            ap2_available=self.ap2_available,
            enabled=None if enabled is None else bool(enabled),
        )
        self._players[player.player_id] = player
        await self.host.register_player(player)

    async def device_updated(self, device: DeviceRecord) -> None:
        """Refresh a player's identity (address, name, ports, TXT)."""
        player = self._players.get(device.player_id)
        if player is None:
            await self.device_added(device)
            return
        player.update_device(device)
        self.host.update_player(player)

    async def device_removed(self, device: DeviceRecord) -> None:
        """Unregister the player of a receiver that left."""
        if self._players.pop(device.player_id, None) is not None:
            await self.pairing.close_player(device.player_id)
            if self.remote_control is not None:
                self.remote_control.forget_player(device.player_id)
            await self.host.unregister_player(device.player_id)

    # --- configuration ------------------------------------------------------------------

    def get_player_config_entries(self, player_id: str) -> list[ConfigEntry]:
        """Per-player entries: pairing entries first, the broken-model alert when it applies."""
        player = self._players.get(player_id)
        if player is None:
            return player_config_entries(None)
        return [*self.pairing.config_entries(player), *player_config_entries(player.device)]

    async def handle_player_config_action(
        self,
        player_id: str,
        action: str,
        values: MutableMapping[str, ConfigValueType] | None = None,
    ) -> list[ConfigEntry]:
        """Run a config action (`start_pairing`, `finish_pairing`, `reset_pairing`); returns
        the entries to show next. Credentials land in `values` and in the host's settings.
        """
        await self.pairing.handle_action(self._require(player_id), action, values)
        return self.get_player_config_entries(player_id)

    def reload_player_settings(self, player_id: str) -> None:
        """Re-read a player's stored settings after the host changed them."""
        player = self._players.get(player_id)
        if player is None:
            return
        values = dict(self.host.get_player_config_values(player_id))
        values.pop(CONF_ENABLED, None)
        player.settings = PlayerSettings.from_values(values)
        self.host.update_player(player)

    # --- player commands ----------------------------------------------------------------

    async def cmd_volume_set(self, player_id: str, volume_level: int) -> None:
        """Record the volume (0..100); a running stream will be told by the StreamSession."""
        player = self._require(player_id)
        player.state.volume_level = max(0, min(100, volume_level))
        if self.remote_control is not None:
            self.remote_control.note_volume_sent(player_id, player.state.volume_level)
        await self.playback.set_volume(player)
        self.host.update_player(player)

    async def play_media(self, player_id: str, media: PlayerMedia) -> None:
        """Start a flow-mode stream of `media` on the player and its group members, in sync."""
        player = self._require(player_id)
        if player.state.synced_to:
            raise PlaybackError(f"{player.name} is synced to {player.state.synced_to}")
        members = [
            self._players[member]
            for member in player.state.group_members
            if member in self._players and member != player_id
        ]
        await self.playback.play(player, members, media)

    async def play_announcement(
        self, player_id: str, media: PlayerMedia, volume_level: int | None = None
    ) -> None:
        """Play an announcement on the player's group and return once it was heard.

        While the group plays it is mixed over the music in every room at one instant (the
        music ducked, no stream restarted; the receivers' volume is left as it is). Otherwise
        (idle, or paused: that session is stopped) it plays as a stream of its own at
        `volume_level` (each player's volume restored after).
        """
        player = self._require(player_id)
        key = str((media.custom_data or {}).get("announcement_url") or media.uri)
        if await self.playback.announce(player_id, media, key):
            return
        leader = self._players.get(player.state.synced_to or "", player)
        members = [
            self._players[member]
            for member in leader.state.group_members
            if member in self._players and member != leader.player_id
        ]
        everyone = [leader, *members]
        volumes = {p.player_id: p.state.volume_level for p in everyone}
        if volume_level is not None:
            for one in everyone:
                one.state.volume_level = max(0, min(100, volume_level))
        try:
            session = await self.playback.play(leader, members, media)
            if session is not None:
                await session.wait_ended(MAX_ANNOUNCEMENT_S + ANNOUNCE_GRACE_S)
        finally:
            for one in everyone:
                one.state.volume_level = volumes[one.player_id]
                self.host.update_player(one)

    async def update_media(
        self, player_id: str, media: PlayerMedia, track_elapsed_s: float | None = None
    ) -> bool:
        """The host moved on to another track of the same stream: tell the receivers."""
        self._require(player_id)
        return await self.playback.set_media(player_id, media, track_elapsed_s)

    async def cmd_play(self, player_id: str) -> None:
        """Resume the paused group of the player (all members on one new timeline)."""
        self._require(player_id)
        await self.playback.resume(player_id)

    async def cmd_pause(self, player_id: str) -> None:
        """Pause the player's group; members keep their unplayed audio and stay aligned."""
        self._require(player_id)
        await self.playback.pause(player_id)

    async def cmd_stop(self, player_id: str) -> None:
        """Stop the session the player is in and return its players to IDLE."""
        self._require(player_id)
        await self.playback.stop(player_id)

    async def set_members(
        self,
        player_id: str,
        player_ids_to_add: list[str] | None = None,
        player_ids_to_remove: list[str] | None = None,
    ) -> None:
        """Change the sync group led by `player_id`; a running session gains (late join) or
        loses members without restarting the others. Removing the leader dissolves it."""
        leader = self._require(player_id)
        if leader.state.synced_to:
            raise PlaybackError(f"{leader.name} is synced to {leader.state.synced_to}")
        members = leader.state.group_members
        for child_id in player_ids_to_remove or []:
            dropped = list(members) if child_id == player_id else [child_id]
            if child_id == player_id:
                await self.playback.stop(player_id)
            for dropped_id in dropped:
                if dropped_id in members:
                    members.remove(dropped_id)
                child = self._players.get(dropped_id)
                if child is not None and dropped_id != player_id:
                    child.state.synced_to = None
                    await self.playback.leave(dropped_id)
                    self.host.update_player(child)
        for child_id in player_ids_to_add or []:
            if child_id == player_id or child_id in members:
                continue
            child = self._require(child_id)
            members.append(child_id)
            child.state.synced_to = player_id
            await self.playback.join(player_id, child)
            self.host.update_player(child)
        self.host.update_player(leader)

    def _require(self, player_id: str) -> AirPlayPlayer:
        player = self._players.get(player_id)
        if player is None:
            raise KeyError(f"unknown AirPlay player {player_id!r}")
        return player
