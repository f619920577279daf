"""Pairing behind the provider's config actions: `PairingManager` keeps one `PairingSession`
(`pairing.attempt`) per player behind Music Assistant style actions and stores the credentials
through the host. Neither the PIN nor the credentials are ever logged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING

from music_assistant_models.config_entries import ConfigEntry, ConfigValueType

from airplay_provider.config import (
    CONF_ACTION_FINISH_PAIRING,
    CONF_ACTION_RESET_PAIRING,
    CONF_ACTION_START_PAIRING,
    CONF_AIRPLAY_CREDENTIALS,
    CONF_PAIRING_PIN,
    CONF_RAOP_CREDENTIALS,
)
from airplay_provider.pairing.attempt import PROTOCOL_LABELS, PairingSession, PairingTarget
from airplay_provider.pairing.config_entries import pairing_config_entries
from airplay_provider.pairing.errors import (
    InvalidPinError,
    PairingError,
    PairingRefusedError,
    PairingStateError,
)
from airplay_provider.protocol.txt import StreamingProtocol

if TYPE_CHECKING:
    from airplay_provider.host_api import ProviderHost
    from airplay_provider.player import AirPlayPlayer


def credentials_key(protocol: StreamingProtocol) -> str:
    """The hidden player setting that stores credentials for ``protocol``."""
    return (
        CONF_AIRPLAY_CREDENTIALS
        if protocol is StreamingProtocol.AIRPLAY2
        else CONF_RAOP_CREDENTIALS
    )


SessionFactory = Callable[[PairingTarget, str], PairingSession]


class PairingManager:
    """Per-player pairing behind the config actions ``start_pairing`` / ``finish_pairing`` /
    ``reset_pairing``; credentials go to the host's player settings (hidden, per protocol).
    """

    def __init__(
        self,
        host: ProviderHost,
        identifier: str,
        *,
        session_factory: SessionFactory = PairingSession,
    ) -> None:
        """``identifier``: the provider's persistent DACP id."""
        self._host = host
        self._identifier = identifier
        self._session_factory = session_factory
        self._sessions: dict[str, PairingSession] = {}
        self._errors: dict[str, str] = {}

    def session(self, player_id: str) -> PairingSession | None:
        """The player's pairing session in progress, if any."""
        session = self._sessions.get(player_id)
        return session if session is not None and session.active else None

    def config_entries(self, player: AirPlayPlayer) -> list[ConfigEntry]:
        """Pairing entries for the player's current state (see `pairing_config_entries`)."""
        protocol = player.protocol
        if protocol is None:
            return []
        return pairing_config_entries(
            PROTOCOL_LABELS[protocol],
            required=player.device.pairing_required,
            paired=bool(player.credentials),
            in_progress=self.session(player.player_id) is not None,
            error=self._errors.get(player.player_id),
        )

    async def handle_action(
        self,
        player: AirPlayPlayer,
        action: str,
        values: MutableMapping[str, ConfigValueType] | None = None,
    ) -> None:
        """Run one config action. Failures are kept for the entries (ALERT), not raised."""
        player_id = player.player_id
        if action == CONF_ACTION_START_PAIRING:
            await self._start(player)
        elif action == CONF_ACTION_FINISH_PAIRING:
            pin = (values or {}).get(CONF_PAIRING_PIN)
            await self._finish(player, pin if isinstance(pin, str) else "", values)
        elif action == CONF_ACTION_RESET_PAIRING:
            await self.close_player(player_id)
            self._errors.pop(player_id, None)
            await self._store(player, None, values)
        else:
            raise ValueError(f"unknown pairing action {action!r}")

    async def close_player(self, player_id: str) -> None:
        """Abandon the player's pairing session, if any."""
        session = self._sessions.pop(player_id, None)
        if session is not None:
            await session.close()

    async def close(self) -> None:
        """Abandon every pairing session (provider unload)."""
        for player_id in list(self._sessions):
            await self.close_player(player_id)

    async def _start(self, player: AirPlayPlayer) -> None:
        player_id = player.player_id
        if self.session(player_id) is not None:
            self._host.logger.warning("%s: pairing is already in progress", player.name)
            return
        await self.close_player(player_id)
        self._errors.pop(player_id, None)
        protocol = player.protocol
        try:
            if protocol is None:
                raise PairingRefusedError("no usable streaming protocol for this device")
            target = PairingTarget.for_device(player.device, protocol)
            session = self._session_factory(target, self._identifier)
            self._sessions[player_id] = session
            await session.start()
        except PairingError as err:
            self._errors[player_id] = str(err)
            await self.close_player(player_id)

    async def _finish(
        self,
        player: AirPlayPlayer,
        pin: str,
        values: MutableMapping[str, ConfigValueType] | None,
    ) -> None:
        player_id = player.player_id
        session = self._sessions.get(player_id)
        try:
            if session is None:
                raise PairingStateError("start pairing first")
            credentials = await session.finish(pin)
        except InvalidPinError as err:
            self._errors[player_id] = str(err)  # the session keeps waiting for a PIN
            return
        except PairingError as err:
            self._errors[player_id] = str(err)
            await self.close_player(player_id)
            return
        self._sessions.pop(player_id, None)
        self._errors.pop(player_id, None)
        if values is not None:
            values.pop(CONF_PAIRING_PIN, None)
        await self._store(player, credentials, values)

    async def _store(
        self,
        player: AirPlayPlayer,
        credentials: str | None,
        values: MutableMapping[str, ConfigValueType] | None,
    ) -> None:
        protocol = player.protocol or StreamingProtocol.RAOP
        key = credentials_key(protocol)
        if values is not None:
            values[key] = credentials
        await self._host.set_player_config_value(player.player_id, key, credentials)
        if key == CONF_AIRPLAY_CREDENTIALS:
            player.settings = dataclasses.replace(player.settings, airplay_credentials=credentials)
        else:
            player.settings = dataclasses.replace(player.settings, raop_credentials=credentials)
        self._host.update_player(player)
        self._host.logger.info(
            "%s: %s credentials %s",
            player.name,
            PROTOCOL_LABELS[protocol],
            "stored" if credentials else "removed",
        )
