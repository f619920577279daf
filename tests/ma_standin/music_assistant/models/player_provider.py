"""Stand-in for music_assistant.models.player_provider (2.8-dev signatures)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from music_assistant.models.provider import Provider

if TYPE_CHECKING:
    from music_assistant.models.player import Player


class PlayerProvider(Provider):
    """Base of player providers."""

    async def loaded_in_mass(self) -> None:
        """After the provider was loaded."""

    def on_player_enabled(self, player_id: str) -> None:
        """Default: rediscover this provider's players a little later."""
        self.mass.call_later(
            5, self.mass.run_provider_discovery, self.instance_id, task_id=f"discover_{player_id}"
        )

    def on_player_disabled(self, player_id: str) -> None:
        """Default: unregister the player."""
        self.mass.create_task(self.mass.players.unregister(player_id))

    async def remove_player(self, player_id: str) -> None:
        """Only for REMOVE_PLAYER providers."""
        raise NotImplementedError

    async def create_group_player(
        self, name: str, members: list[str], dynamic: bool = True
    ) -> Player:
        """Only for CREATE_GROUP_PLAYER providers."""
        raise NotImplementedError

    async def remove_group_player(self, player_id: str) -> None:
        """Only for REMOVE_GROUP_PLAYER providers."""
        raise NotImplementedError

    async def discover_players(self) -> None:
        """Nothing for mDNS-driven providers."""

    @property
    def players(self) -> list[Player]:
        """This provider's registered players."""
        return self.mass.players.all_players(
            provider_filter=self.instance_id, return_protocol_players=True
        )
