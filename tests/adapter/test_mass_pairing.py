"""Pairing as Music Assistant's UI does it: config actions on the player, the PIN the device
shows, credentials stored hidden (encrypted) in the player's settings (AirPlay 2 emulator)."""

from __future__ import annotations

import socket

from music_assistant_models.config_entries import ConfigEntry, ConfigValueType
from zeroconf import ServiceStateChange
from zeroconf.asyncio import AsyncServiceInfo

from airplay_provider.mass.player import MassAirPlayPlayer
from airplay_provider.protocol.hap.credentials import HapCredentials
from tests.adapter.mass_fixtures import HOST, loaded_provider
from tests.receivers.ap2_emulator import Ap2Emulator

AIRPLAY = "_airplay._tcp.local."
SPEAKER = "ap112233445577"
TXT = {
    "deviceid": "11:22:33:44:55:77",
    "features": "0x200,0x10040",  # AirPlay 2 bits 9, 38, 48
    "flags": "0x8",  # PIN required
    "model": "AudioAccessory5,1",
    "manufacturer": "Apple Inc.",
}


def keys(entries: list[ConfigEntry]) -> list[str]:
    return [entry.key for entry in entries]


async def test_pin_pairing_through_player_config_actions() -> None:
    async with Ap2Emulator(status_flags=0x8) as emulator, loaded_provider() as provider:
        mass = provider.mass
        info = AsyncServiceInfo(
            AIRPLAY,
            f"Speaker.{AIRPLAY}",
            port=emulator.port,
            properties=TXT,
            server="emulated.local.",
            addresses=[socket.inet_aton(HOST)],
        )
        await provider.on_mdns_service_state_change(info.name, ServiceStateChange.Added, info)
        player = mass.players.get_player(SPEAKER)
        assert isinstance(player, MassAirPlayPlayer)
        assert not player.state.available  # needs pairing first
        entries = await player.get_config_entries()
        assert keys(entries)[:2] == ["pairing_instructions", "start_pairing"]
        # A native player's entries are shown as they are: the AirPlay 2 ones follow the choice.
        by_key = {entry.key: entry for entry in entries}
        assert by_key["hires_audio"].depends_on == "airplay_protocol"
        assert by_key["hires_audio"].depends_on_value_not == 1  # not with "Prefer AirPlay 1"

        values: dict[str, ConfigValueType] = {}
        entries = await player.get_config_entries(action="start_pairing", values=values)
        assert keys(entries)[:2] == ["pairing_pin", "finish_pairing"]
        assert emulator.displayed_pin is not None
        values["pairing_pin"] = emulator.displayed_pin  # the user types what the device shows
        entries = await player.get_config_entries(action="finish_pairing", values=values)
        assert keys(entries)[:2] == ["pairing_status", "reset_pairing"]
        assert "pairing_pin" not in values

        credentials = values["airplay_credentials"]
        assert isinstance(credentials, str)
        parsed = HapCredentials.parse(credentials)
        assert parsed.accessory_ltpk == emulator.device.public_key
        assert emulator.device.paired[provider.core.dacp_id.encode()] == parsed.public_key
        stored = mass.config.get_raw_player_config_value(SPEAKER, "airplay_credentials")
        assert isinstance(stored, str)
        assert stored != credentials
        assert mass.config.decrypt_string(stored) == credentials
        credential_entry = next(e for e in entries if e.key == "airplay_credentials")
        assert credential_entry.hidden
        assert player.state.available  # paired: usable now

        await mass.config.save_player_config(SPEAKER, values)  # the UI's save after the action
        core = provider.core.get_player(SPEAKER)
        assert core is not None
        assert core.credentials == credentials
