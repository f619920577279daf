"""Stand-in for music_assistant.controllers.players.controller.PlayerController.

Registration follows the server's order (config set, state computed silently,
`on_config_updated`, initialized); player commands are recorded in `calls` (the server would
route most of them through the player's queue), and `cmd_volume_set` / `cmd_set_members` /
`cmd_stop` also reach the player as the server does for a player without a queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from music_assistant_models.enums import MediaType, PlayerFeature, PlayerType
from music_assistant_models.errors import (
    AlreadyRegisteredError,
    PlayerCommandFailed,
    PlayerUnavailableError,
)
from music_assistant_models.player import PlayerMedia

from music_assistant.constants import ANNOUNCE_ALERT_FILE

if TYPE_CHECKING:
    from music_assistant_models.config_entries import PlayerConfig

    from music_assistant.mass import MusicAssistant
    from music_assistant.models.player import Player

Call = tuple[str, str, Any]


class PlayerController:
    """Registered players and the player commands."""

    __slots__ = ("_players", "calls", "mass", "state_updates")

    def __init__(self, mass: MusicAssistant) -> None:
        """No players yet."""
        self.mass = mass
        self._players: dict[str, Player] = {}
        self.calls: list[Call] = []
        self.state_updates: list[tuple[str, dict[str, tuple[Any, Any]]]] = []

    def all_players(
        self,
        return_unavailable: bool = True,
        return_disabled: bool = False,
        provider_filter: str | None = None,
        return_protocol_players: bool = False,
    ) -> list[Player]:
        """Registered players, filtered."""
        return [
            p
            for p in self._players.values()
            if (p.state.available or return_unavailable)
            and (p.state.enabled or return_disabled)
            and p.initialized.is_set()
            and (provider_filter is None or p.provider.instance_id == provider_filter)
            and (return_protocol_players or p.state.type != PlayerType.PROTOCOL)
        ]

    def get_player(
        self,
        player_id: str,
        raise_unavailable: bool = False,
    ) -> Player | None:
        """A registered player."""
        player = self._players.get(player_id)
        if player is None and raise_unavailable:
            raise PlayerUnavailableError(f"Player {player_id} is not available")
        return player

    async def register(self, player: Player) -> None:
        """Register (refused twice; disabled players are ignored)."""
        if player.player_id in self._players:
            raise AlreadyRegisteredError(f"Player {player.player_id} is already registered!")
        if not player.state.enabled:
            return
        self._players[player.player_id] = player
        player.set_config(await self.mass.config.get_player_config(player.player_id))
        player.update_state(signal_event=False)
        await player.on_config_updated()
        player.set_initialized()

    async def register_or_update(self, player: Player) -> None:
        """Register, or replace and update an existing registration."""
        if player.player_id in self._players:
            self._players[player.player_id] = player
            player.update_state()
            return
        await self.register(player)

    async def unregister(self, player_id: str, permanent: bool = False) -> None:
        """Forget a player (its config stays unless permanent)."""
        player = self._players.pop(player_id, None)
        if player is None:
            return
        await player.on_unload()
        player.state.available = False

    def signal_player_state_update(
        self,
        player: Player,
        changed_values: dict[str, tuple[Any, Any]],
        force_update: bool = False,
        skip_forward: bool = False,
    ) -> None:
        """Record what changed."""
        self.state_updates.append((player.player_id, changed_values))

    async def on_player_config_change(self, config: PlayerConfig, changed_keys: set[str]) -> None:
        """Hand a saved config to the player, as the server does."""
        player = self._players.get(config.player_id)
        if player is None:
            return
        player.set_config(config)
        await player.on_config_updated()
        player.update_state()

    async def cmd_stop(self, player_id: str) -> None:
        """STOP (recorded; reaches the player)."""
        self.calls.append(("stop", player_id, None))
        player = self.get_player(player_id, True)
        assert player is not None
        await player.stop()

    async def cmd_play(self, player_id: str) -> None:
        """PLAY (recorded; the server may resume the queue instead)."""
        self.calls.append(("play", player_id, None))

    async def cmd_pause(self, player_id: str) -> None:
        """PAUSE (recorded; the server routes it through the queue)."""
        self.calls.append(("pause", player_id, None))

    async def cmd_play_pause(self, player_id: str) -> None:
        """PLAY/PAUSE toggle (recorded)."""
        self.calls.append(("play_pause", player_id, None))

    async def cmd_resume(
        self, player_id: str, source: str | None = None, media: PlayerMedia | None = None
    ) -> None:
        """RESUME (recorded)."""
        self.calls.append(("resume", player_id, None))

    async def cmd_next_track(self, player_id: str) -> None:
        """NEXT (recorded; the server moves the queue)."""
        self.calls.append(("next", player_id, None))

    async def cmd_previous_track(self, player_id: str) -> None:
        """PREVIOUS (recorded; the server moves the queue)."""
        self.calls.append(("previous", player_id, None))

    async def cmd_volume_set(self, player_id: str, volume_level: int) -> None:
        """VOLUME_SET (recorded; reaches the player)."""
        self.calls.append(("volume_set", player_id, volume_level))
        player = self.get_player(player_id, True)
        assert player is not None
        await player.volume_set(volume_level)

    async def cmd_set_members(
        self,
        target_player: str,
        player_ids_to_add: list[str] | None = None,
        player_ids_to_remove: list[str] | None = None,
    ) -> None:
        """SET_MEMBERS on the target player."""
        self.calls.append(("set_members", target_player, (player_ids_to_add, player_ids_to_remove)))
        player = self.get_player(target_player, True)
        assert player is not None
        await player.set_members(player_ids_to_add, player_ids_to_remove)

    async def play_announcement(
        self,
        player_id: str,
        url: str,
        pre_announce: bool | None = None,
        volume_level: int | None = None,
        pre_announce_url: str | None = None,
    ) -> None:
        """PLAY_ANNOUNCEMENT as the server runs it for a player with the feature (recorded):
        http(s) URLs only; a PlayerMedia of type ANNOUNCEMENT (the stream server's URL, the
        announce data as custom_data) to the player's own `play_announcement`, awaited. Not
        modelled: the announce-volume strategies (`volume_level` is passed on as given), the
        pre-announce setting (off unless asked), the fallback for players without the feature.
        """
        self.calls.append(("play_announcement", player_id, url))
        player = self.get_player(player_id, True)
        assert player is not None
        if not url.startswith("http"):
            raise PlayerCommandFailed("Only URLs are supported for announcements")
        if PlayerFeature.PLAY_ANNOUNCEMENT not in player.state.supported_features:
            raise NotImplementedError("the stand-in does not model the server's fallback")
        announce_data = {
            "announcement_url": url,
            "pre_announce": bool(pre_announce),
            "pre_announce_url": pre_announce_url or ANNOUNCE_ALERT_FILE,
        }
        announcement = PlayerMedia(
            uri=self.mass.streams.get_announcement_url(player_id, announce_data),
            media_type=MediaType.ANNOUNCEMENT,
            title="Announcement",
            custom_data=dict(announce_data),
        )
        await player.play_announcement(announcement, volume_level)

    async def cmd_ungroup(self, player_id: str) -> None:
        """UNGROUP (recorded; reaches the player)."""
        self.calls.append(("ungroup", player_id, None))
        player = self.get_player(player_id, True)
        assert player is not None
        await player.ungroup()
