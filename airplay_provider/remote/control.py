"""Provider-side DACP: receivers' remote buttons and volume reach the host's commands.

`RemoteControl` is the `DacpTarget` of the provider's `DacpServer`: it finds the player of an
``Active-Remote`` token (a random per-stream token from :meth:`RemoteControl.new_stream`,
retired when that stream ends) and carries out what `DacpPolicy` decided through the same
`ProviderHost` commands the provider uses for everything else. It also owns the server's
lifecycle: `start` in the provider's ``handle_async_init``, `stop` in ``unload``.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final, Protocol

import ifaddr
from music_assistant_models.enums import PlaybackState
from zeroconf import InterfaceChoice
from zeroconf.asyncio import AsyncZeroconf

from airplay_provider.identity import new_active_remote
from airplay_provider.protocol.dacp import ActionKind, DacpAction, DacpPlayerState
from airplay_provider.remote.server import DacpServer

if TYPE_CHECKING:
    from airplay_provider.host_api import ProviderHost
    from airplay_provider.player import AirPlayPlayer

_LOGGER = logging.getLogger(__name__)

VOLUME_STEP: Final = 5


class RemoteControlledProvider(Protocol):
    """What `RemoteControl` needs from the provider."""

    @property
    def host(self) -> ProviderHost:
        """The host whose commands carry out remote buttons."""
        ...

    @property
    def players(self) -> Mapping[str, AirPlayPlayer]:
        """Registered players by id."""
        ...

    async def set_members(
        self,
        player_id: str,
        player_ids_to_add: list[str] | None = None,
        player_ids_to_remove: list[str] | None = None,
    ) -> None:
        """Change the sync group led by `player_id`."""
        ...


def local_addresses() -> list[str]:
    """This host's routable addresses to announce (IPv4 first); loopback when there is none."""
    v4: list[str] = []
    v6: list[str] = []
    for adapter in ifaddr.get_adapters():
        for entry in adapter.ips:
            text = entry.ip if isinstance(entry.ip, str) else entry.ip[0]
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                continue
            if address.is_loopback or address.is_link_local or address.is_unspecified:
                continue
            (v4 if address.version == 4 else v6).append(str(address))
    return list(dict.fromkeys(v4 or v6)) or ["127.0.0.1"]


def dacp_state(player: AirPlayPlayer) -> DacpPlayerState:
    """What the DACP policy needs to know about `player` right now."""
    state = player.state
    return DacpPlayerState(
        player_id=player.player_id,
        playing=state.playback_state is PlaybackState.PLAYING,
        has_stream=state.playback_state is not PlaybackState.IDLE,
        grouped=bool(state.group_members or state.synced_to),
        volume=state.volume_level,
        ignore_device_volume=player.settings.ignore_volume or player.device.is_apple,
    )


class RemoteControl:
    """The provider's DACP target plus its `DacpServer` (announced as ``iTunes_Ctrl_<id>``).

    ``interfaces``: addresses to bind and announce (None: bind all, announce this host's
    routable addresses). ``zeroconf``: a shared instance; without one, an own instance bound
    to ``interfaces`` is created and closed again by `stop`.
    """

    def __init__(
        self,
        provider: RemoteControlledProvider,
        dacp_id: str,
        *,
        interfaces: Sequence[str] | None = None,
        zeroconf: AsyncZeroconf | None = None,
        volume_step: int = VOLUME_STEP,
    ) -> None:
        self._provider = provider
        self._dacp_id = dacp_id
        self._interfaces = list(interfaces) if interfaces else None
        self._zeroconf = zeroconf
        self._owns_zeroconf = False
        self._volume_step = volume_step
        self._server: DacpServer | None = None
        self._streams: dict[str, str] = {}  # Active-Remote token -> player id

    @property
    def dacp_id(self) -> str:
        """The DACP id (``DACP-ID`` header of every stream, and the pairing identity)."""
        return self._dacp_id

    @property
    def port(self) -> int:
        """The DACP server's TCP port (0 while stopped)."""
        return self._server.port if self._server else 0

    @property
    def server(self) -> DacpServer | None:
        """The running server, if started."""
        return self._server

    async def start(self) -> None:
        """Start the DACP server and announce it."""
        if self._server is not None:
            raise RuntimeError("remote control already started")
        if self._zeroconf is None:
            self._zeroconf = AsyncZeroconf(interfaces=self._interfaces or InterfaceChoice.All)
            self._owns_zeroconf = True
        server = DacpServer(
            self,
            self._dacp_id,
            hosts=self._interfaces,
            zeroconf=self._zeroconf,
            publish_addresses=self._interfaces or local_addresses(),
        )
        try:
            await server.start()
        except BaseException:
            await self._close_zeroconf()
            raise
        self._server = server
        _LOGGER.debug("DACP remote control %s on port %d", self._dacp_id, server.port)

    async def stop(self) -> None:
        """Unannounce and stop the server; close our own zeroconf."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
        await self._close_zeroconf()
        self._streams.clear()

    async def _close_zeroconf(self) -> None:
        if self._owns_zeroconf and self._zeroconf is not None:
            await self._zeroconf.async_close()
            self._zeroconf = None
            self._owns_zeroconf = False

    # -- streams ---------------------------------------------------------------------------

    def new_stream(self, player_id: str) -> str:
        """A fresh Active-Remote token for the player's next stream (give it to the streamer).

        The device's earlier prevent-playback and a pending pause no longer apply.
        """
        self.end_stream(player_id)
        token = new_active_remote()
        while token in self._streams:
            token = new_active_remote()
        self._streams[token] = player_id
        if self._server is not None:
            self._server.reset_player(player_id)
        return token

    def retire(self, token: str) -> None:
        """That stream ended: its token no longer maps to anyone."""
        self._streams.pop(token, None)

    def end_stream(self, player_id: str) -> None:
        """The player's stream ended: its token no longer maps to it."""
        for token in [t for t, pid in self._streams.items() if pid == player_id]:
            del self._streams[token]

    def forget_player(self, player_id: str) -> None:
        """The player left: drop its tokens and DACP state."""
        self.end_stream(player_id)
        if self._server is not None:
            self._server.forget_player(player_id)

    def note_volume_sent(self, player_id: str, volume: int) -> None:
        """We sent this volume: the device's echo of it is not a user change."""
        if self._server is not None:
            self._server.note_volume_sent(player_id, volume)

    # -- DacpTarget --------------------------------------------------------------------------

    def find_player_by_active_remote(self, active_remote: str) -> DacpPlayerState | None:
        """The player streaming with this token; None for any other token.

        Only per-stream random tokens count: a MAC-derived one is public (receivers announce
        their MAC in mDNS), so anyone on the LAN could press our buttons with it.
        """
        player_id = self._streams.get(active_remote)
        player = self._provider.players.get(player_id) if player_id is not None else None
        return dacp_state(player) if player is not None else None

    async def handle_dacp_action(self, player_id: str, action: DacpAction) -> None:
        """Carry out a decided action through the host's commands."""
        player = self._provider.players.get(player_id)
        if player is None or action.kind is ActionKind.NONE:
            return
        host = self._provider.host
        kind = action.kind
        _LOGGER.debug("DACP: %s on %s", kind.value, player.name)
        if kind is ActionKind.PLAY:
            await host.cmd_play(player_id)
        elif kind is ActionKind.PAUSE:
            await host.cmd_pause(player_id)
        elif kind is ActionKind.PLAY_PAUSE:
            await host.cmd_play_pause(player_id)
        elif kind in (ActionKind.STOP, ActionKind.STOP_SESSION):
            await host.cmd_stop(player_id)
        elif kind is ActionKind.NEXT:
            await host.cmd_next(player_id)
        elif kind is ActionKind.PREVIOUS:
            await host.cmd_previous(player_id)
        elif kind in (ActionKind.VOLUME_UP, ActionKind.VOLUME_DOWN):
            step = self._volume_step if kind is ActionKind.VOLUME_UP else -self._volume_step
            level = max(0, min(100, player.state.volume_level + step))
            await host.cmd_volume_set(player_id, level)
        elif kind is ActionKind.SET_VOLUME and action.volume is not None:
            await host.cmd_volume_set(player_id, action.volume)
        elif kind is ActionKind.UPDATE_VOLUME_STATE and action.volume is not None:
            player.state.volume_level = action.volume
            host.update_player(player)
        elif kind is ActionKind.LEAVE_GROUP:
            await self._leave_group(player)
        else:
            _LOGGER.debug("DACP: %s is not supported by the host; ignored", kind.value)

    async def _leave_group(self, player: AirPlayPlayer) -> None:
        """Another source took the speaker: a member leaves its group, a leader stops."""
        leader = player.state.synced_to
        if leader is None:
            await self._provider.host.cmd_stop(player.player_id)
            return
        try:
            await self._provider.set_members(leader, player_ids_to_remove=[player.player_id])
        except NotImplementedError:
            await self._provider.host.cmd_stop(player.player_id)
