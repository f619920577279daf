"""AirPlayPlayer: one receiver — its device record, settings and playback state."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from music_assistant_models.enums import IdentifierType, PlaybackState, PlayerFeature, PlayerType
from music_assistant_models.player import DeviceInfo, Player, PlayerMedia
from music_assistant_models.unique_list import UniqueList

from airplay_provider.config import ConfigValidationError, PlayerSettings
from airplay_provider.protocol.txt import (
    DeviceRecord,
    ProtocolUnavailableError,
    StreamingProtocol,
    choose_protocol,
    mac_from_player_id,
)

FALLBACK_VOLUME = 20
#: Music Assistant 2.8-dev pins music-assistant-models 1.1.102, whose Player has no needs_setup.
_PLAYER_HAS_NEEDS_SETUP = any(f.name == "needs_setup" for f in dataclasses.fields(Player))
BASE_FEATURES = frozenset(
    {
        PlayerFeature.PLAY_MEDIA,
        PlayerFeature.SET_MEMBERS,
        PlayerFeature.MULTI_DEVICE_DSP,
        PlayerFeature.VOLUME_SET,
        PlayerFeature.PLAY_ANNOUNCEMENT,
    }
)


def settings_from_values(
    values: Mapping[str, object], name: str, logger: logging.Logger
) -> PlayerSettings:
    """A player's settings from its stored values; refused values give the defaults (warned).

    The provider (what `play` streams with) and `discover` (what it shows) both read a
    player's settings through here, so they agree on its protocol.
    """
    try:
        return PlayerSettings.from_values(values)
    except ConfigValidationError as err:
        logger.warning("%s: stored setting refused (%s); defaults", name, err)
        return PlayerSettings()


@dataclass
class PlayerState:
    """What the player is doing now (mirrors Music Assistant's Player state fields)."""

    playback_state: PlaybackState = PlaybackState.IDLE
    volume_level: int = FALLBACK_VOLUME
    elapsed_time: float | None = None
    elapsed_time_last_updated: float | None = None
    group_members: list[str] = field(default_factory=list)
    synced_to: str | None = None
    current_media: PlayerMedia | None = None
    available: bool = True


class AirPlayPlayer:
    """One AirPlay receiver as a player: identity from discovery, settings, state."""

    def __init__(
        self,
        device: DeviceRecord,
        settings: PlayerSettings | None = None,
        *,
        ap2_available: bool = True,
        volume_level: int = FALLBACK_VOLUME,
        enabled: bool | None = None,
    ) -> None:
        """Create the player for `device`; `enabled` defaults to False for broken models."""
        self.device = device
        self.settings = settings or PlayerSettings()
        self.ap2_available = ap2_available
        self.enabled = (not device.is_broken) if enabled is None else enabled
        self.state = PlayerState(volume_level=volume_level)

    @property
    def player_id(self) -> str:
        """``ap`` + 12 lower-case hex digits of the MAC."""
        return self.device.player_id

    @property
    def name(self) -> str:
        """Display name as announced."""
        return self.device.name

    @property
    def address(self) -> str | None:
        """Address streams go to (see `protocol.addresses.choose_address`)."""
        return self.device.address

    @property
    def mac_address(self) -> str:
        """MAC in ``AA:BB:CC:DD:EE:FF`` form."""
        return mac_from_player_id(self.player_id)

    @property
    def player_type(self) -> PlayerType:
        """PLAYER for Apple devices, PROTOCOL (wrapped by a universal player) otherwise."""
        return PlayerType.PLAYER if self.device.is_apple else PlayerType.PROTOCOL

    @property
    def supported_features(self) -> frozenset[PlayerFeature]:
        """Base features, plus PAUSE unless synced to a leader (a group pauses in sync)."""
        if self.state.synced_to:
            return BASE_FEATURES
        return BASE_FEATURES | {PlayerFeature.PAUSE}

    @property
    def protocol(self) -> StreamingProtocol | None:
        """The protocol a stream would use now, or None when none is usable."""
        try:
            return choose_protocol(
                self.device, self.settings.protocol, ap2_available=self.ap2_available
            )
        except ProtocolUnavailableError:
            return None

    @property
    def credentials(self) -> str | None:
        """Stored pairing credentials for the protocol in use."""
        if self.protocol is StreamingProtocol.AIRPLAY2:
            return self.settings.airplay_credentials
        return self.settings.raop_credentials

    @property
    def needs_pairing(self) -> bool:
        """The device asks for pairing and we hold no credentials for the chosen protocol."""
        return self.device.pairing_required and not self.credentials

    def update_device(self, device: DeviceRecord) -> bool:
        """Take a newer discovery record; True when name, address or ports changed."""
        if device.player_id != self.player_id:
            raise ValueError(f"record for {device.player_id} given to player {self.player_id}")
        old = self.device
        self.device = device
        self.state.available = device.address is not None
        return (old.name, old.address, old.raop_port, old.airplay_port) != (
            device.name,
            device.address,
            device.raop_port,
            device.airplay_port,
        )

    def set_elapsed(self, seconds: float | None, *, now: float | None = None) -> None:
        """Record elapsed playback time and when it was measured (UTC timestamp)."""
        self.state.elapsed_time = seconds
        self.state.elapsed_time_last_updated = time.time() if now is None else now

    def to_model(self, provider_instance_id: str) -> Player:
        """This player as Music Assistant's `Player` model (for hosts that want it)."""
        identifiers = {IdentifierType.MAC_ADDRESS: self.mac_address}
        if self.address:
            identifiers[IdentifierType.IP_ADDRESS] = self.address
        model = Player(
            player_id=self.player_id,
            provider=provider_instance_id,
            type=self.player_type,
            name=self.name,
            available=self.state.available and self.address is not None,
            device_info=DeviceInfo(
                model=self.device.model,
                manufacturer=self.device.manufacturer,
                model_id=self.device.model_id,
                identifiers=identifiers,
            ),
            supported_features=set(self.supported_features),
            playback_state=self.state.playback_state,
            elapsed_time=self.state.elapsed_time,
            elapsed_time_last_updated=self.state.elapsed_time_last_updated,
            volume_level=self.state.volume_level,
            group_members=UniqueList(self._members_with_leader()),
            can_group_with={provider_instance_id},
            synced_to=self.state.synced_to,
            current_media=self.state.current_media,
            enabled=self.enabled,
        )
        if _PLAYER_HAS_NEEDS_SETUP:  # music-assistant-models >= 1.1.103 only
            setattr(model, "needs_setup", self.needs_pairing)  # noqa: B010
        return model

    def _members_with_leader(self) -> list[str]:
        members = [m for m in self.state.group_members if m != self.player_id]
        return [self.player_id, *members] if members else []
