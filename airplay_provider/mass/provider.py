"""MassAirPlayProvider: Music Assistant's `PlayerProvider` around our `AirPlayProvider`.

Music Assistant browses mDNS itself and awaits `on_mdns_service_state_change`; discovery turns
receivers into core players, which `MassHost` registers here as `MassAirPlayPlayer`s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from music_assistant.models.player_provider import PlayerProvider
from music_assistant_models.enums import ProviderFeature

from airplay_provider.identity import dacp_id_from_seed, new_dacp_id
from airplay_provider.mass.host import MassHost
from airplay_provider.mass.player import CACHE_CATEGORY_VOLUME, MassAirPlayPlayer
from airplay_provider.protocol.txt import SERVICE_TYPES
from airplay_provider.provider import AirPlayProvider

if TYPE_CHECKING:
    from music_assistant.mass import MusicAssistant
    from music_assistant_models.config_entries import ProviderConfig
    from music_assistant_models.provider import ProviderManifest
    from zeroconf import ServiceStateChange
    from zeroconf.asyncio import AsyncServiceInfo

    from airplay_provider.player import AirPlayPlayer

SUPPORTED_FEATURES = frozenset({ProviderFeature.SYNC_PLAYERS})


class MassAirPlayProvider(PlayerProvider):
    """The provider instance Music Assistant loads (`setup()` returns it)."""

    def __init__(
        self, mass: MusicAssistant, manifest: ProviderManifest, config: ProviderConfig
    ) -> None:
        """The DACP id follows the server id, so AirPlay 2 pairings survive restarts."""
        super().__init__(mass, manifest, config, set(SUPPORTED_FEATURES))
        self.ma_players: dict[str, MassAirPlayPlayer] = {}
        seed = mass.server_id
        self.core = AirPlayProvider(
            MassHost(self),
            ap2_available=True,
            browse=False,
            zeroconf=mass.aiozc,
            dacp_id=dacp_id_from_seed(seed) if seed else new_dacp_id(),
        )

    async def handle_async_init(self) -> None:
        """Start discovery (fed by the core's mDNS) and the DACP server."""
        await self.core.handle_async_init()

    async def unload(self, is_removed: bool = False) -> None:
        """Stop every session, the DACP server and pairing; forget the players."""
        await self.core.unload(is_removed)
        self.ma_players.clear()

    async def on_mdns_service_state_change(
        self, name: str, state_change: ServiceStateChange, info: AsyncServiceInfo | None
    ) -> None:
        """Music Assistant's browser found, changed or lost an AirPlay/RAOP service."""
        self.core.on_mdns_service_state_change(self._announced_name(name), state_change, info)
        await self.core.wait_idle()

    def _announced_name(self, name: str) -> str:
        """The service name as announced (its case gives the display name).

        On (re)load Music Assistant replays its zeroconf cache, whose keys are lower-cased, so
        those names arrive lower-cased; the PTR record's alias keeps the announced spelling.
        """
        if name != name.lower():
            return name
        service_type = next((t for t in SERVICE_TYPES if name.endswith(f".{t}")), None)
        if service_type is None:
            return name
        for record in self.mass.aiozc.zeroconf.cache.entries_with_name(service_type):
            alias = getattr(record, "alias", None)
            if isinstance(alias, str) and alias.lower() == name:
                return alias
        return name

    def on_player_enabled(self, player_id: str) -> None:
        """A player the user re-enabled comes back at once when we still see it."""
        core_player = self.core.get_player(player_id)
        if core_player is None or player_id in self.ma_players:
            super().on_player_enabled(player_id)
            return
        core_player.enabled = True
        self.mass.create_task(self.register_core_player(core_player))

    def on_player_disabled(self, player_id: str) -> None:
        """A disabled player leaves its session and Music Assistant's player list."""
        self.ma_players.pop(player_id, None)
        super().on_player_disabled(player_id)

    # ---- called by MassHost ------------------------------------------------------------

    async def register_core_player(self, core_player: AirPlayPlayer) -> None:
        """Wrap a discovered receiver and register it with Music Assistant."""
        volume = await self.mass.cache.get(
            key=core_player.player_id,
            provider=self.instance_id,
            category=CACHE_CATEGORY_VOLUME,
            default=None,
        )
        if isinstance(volume, int) and 0 <= volume <= 100:
            core_player.state.volume_level = volume
        player = MassAirPlayPlayer(self, core_player)
        self.ma_players[core_player.player_id] = player
        await self.mass.players.register_or_update(player)

    async def unregister_core_player(self, player_id: str) -> None:
        """The receiver left the network."""
        self.ma_players.pop(player_id, None)
        await self.mass.players.unregister(player_id)

    def refresh_player(self, player_id: str) -> None:
        """Push the core players' state to Music Assistant.

        Every player is refreshed before any state is computed: a member's `synced_to` is
        derived from its leader's `group_members`, which may have changed in the same step.
        Music Assistant signals only players whose state really changed.
        """
        if player_id not in self.ma_players:
            return
        players = list(self.ma_players.values())
        for player in players:
            player.refresh()
        for player in players:
            if player.initialized.is_set():
                player.update_state()
