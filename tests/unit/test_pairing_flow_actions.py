"""Pairing through the provider's config actions (Music Assistant style) against the emulator."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator

import pytest
from music_assistant_models.config_entries import ConfigEntry, ConfigValueType
from music_assistant_models.enums import ConfigEntryType
from zeroconf import ServiceInfo, ServiceStateChange

from airplay_provider.protocol.hap.credentials import HapCredentials, LegacyCredentials
from airplay_provider.provider import AirPlayProvider
from tests.receivers.ap2_emulator import Ap2Emulator
from tests.recording_host import RecordingHost

HOST = "127.0.0.1"
DACP_ID = "B16B00B5CAFE0001"
AIRPLAY = "_airplay._tcp.local."
RAOP = "_raop._tcp.local."
SPEAKER = "ap112233445566"
APPLE_TV = "ap665544332211"
AP2_FEATURES = "0x200,0x10040"  # bits 9, 38, 48


def keys(entries: list[ConfigEntry]) -> list[str]:
    return [entry.key for entry in entries]


def service(service_type: str, name: str, port: int, txt: dict[str, str]) -> ServiceInfo:
    return ServiceInfo(
        service_type,
        f"{name}.{service_type}",
        port=port,
        properties=txt,
        server="emulated.local.",
        addresses=[socket.inet_aton(HOST)],
    )


@pytest.fixture
async def emulator() -> AsyncIterator[Ap2Emulator]:
    async with Ap2Emulator(status_flags=0x8) as running:
        yield running


@pytest.fixture
async def host() -> RecordingHost:
    return RecordingHost()


@pytest.fixture
async def provider(host: RecordingHost, emulator: Ap2Emulator) -> AsyncIterator[AirPlayProvider]:
    provider = AirPlayProvider(
        host, ap2_available=True, browse=False, interfaces=[HOST], dacp_id=DACP_ID
    )
    await provider.handle_async_init()
    speaker = {"deviceid": "11:22:33:44:55:66", "features": AP2_FEATURES, "flags": "0x8"}
    speaker |= {"model": "AudioAccessory5,1"}
    apple_tv = {"am": "AppleTV3,2", "sf": "0x200", "et": "0,3,5"}
    for info in (
        service(AIRPLAY, "Speaker", emulator.port, speaker),
        service(RAOP, "665544332211@Apple TV", emulator.port, apple_tv),
    ):
        provider.on_mdns_service_state_change(info.name, ServiceStateChange.Added, info)
    await provider.wait_idle()
    try:
        yield provider
    finally:
        await provider.unload()


async def test_hap_pairing_through_config_actions(
    provider: AirPlayProvider, host: RecordingHost, emulator: Ap2Emulator
) -> None:
    player = host.registered[SPEAKER]
    assert player.needs_pairing
    model = player.to_model(host.instance_id)
    # music-assistant-models 1.1.102 (Music Assistant 2.8-dev) has no needs_setup field.
    assert getattr(model, "needs_setup", True) is True
    assert keys(provider.get_player_config_entries(SPEAKER))[:2] == [
        "pairing_instructions",
        "start_pairing",
    ]
    start = provider.get_player_config_entries(SPEAKER)[1]
    assert (start.type, start.action) == (ConfigEntryType.ACTION, "start_pairing")
    assert "AirPlay 2 pairing" in provider.get_player_config_entries(SPEAKER)[0].label

    entries = await provider.handle_player_config_action(SPEAKER, "start_pairing")
    assert keys(entries)[:2] == ["pairing_pin", "finish_pairing"]
    assert emulator.displayed_pin is not None
    values: dict[str, ConfigValueType] = {"pairing_pin": emulator.displayed_pin}
    entries = await provider.handle_player_config_action(SPEAKER, "finish_pairing", values)

    credentials = host.values[SPEAKER]["airplay_credentials"]
    assert isinstance(credentials, str)
    assert HapCredentials.parse(credentials).accessory_ltpk == emulator.device.public_key
    assert values == {"airplay_credentials": credentials}  # the PIN is not kept
    assert player.credentials == credentials
    assert not player.needs_pairing
    assert keys(entries)[:2] == ["pairing_status", "reset_pairing"]
    assert entries[0].label == "Device is paired (AirPlay 2) and ready to use."
    assert emulator.device.paired[DACP_ID.encode()] == HapCredentials.parse(credentials).public_key

    reset_values: dict[str, ConfigValueType] = {}
    entries = await provider.handle_player_config_action(SPEAKER, "reset_pairing", reset_values)
    assert host.values[SPEAKER]["airplay_credentials"] is None
    assert reset_values == {"airplay_credentials": None}
    assert player.needs_pairing
    assert keys(entries)[:2] == ["pairing_instructions", "start_pairing"]


async def test_wrong_pin_shows_an_alert_and_offers_a_new_start(
    provider: AirPlayProvider, host: RecordingHost, emulator: Ap2Emulator
) -> None:
    emulator.expect_error("POST /pair-setup: HAP error authentication in M4")
    await provider.handle_player_config_action(SPEAKER, "start_pairing")
    wrong = "0000" if emulator.displayed_pin != "0000" else "1111"
    entries = await provider.handle_player_config_action(
        SPEAKER, "finish_pairing", {"pairing_pin": wrong}
    )
    assert keys(entries)[:3] == ["pairing_error", "pairing_instructions", "start_pairing"]
    assert entries[0].type is ConfigEntryType.ALERT
    assert "refused the PIN" in entries[0].label
    assert wrong not in entries[0].label
    assert "airplay_credentials" not in host.values.get(SPEAKER, {})
    assert provider.pairing.session(SPEAKER) is None
    # a malformed PIN keeps the session waiting
    await provider.handle_player_config_action(SPEAKER, "start_pairing")
    entries = await provider.handle_player_config_action(
        SPEAKER, "finish_pairing", {"pairing_pin": "12"}
    )
    assert keys(entries)[:3] == ["pairing_error", "pairing_pin", "finish_pairing"]
    assert provider.pairing.session(SPEAKER) is not None


async def test_second_start_is_refused_while_one_is_running(
    provider: AirPlayProvider, emulator: Ap2Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    await provider.handle_player_config_action(SPEAKER, "start_pairing")
    first = provider.pairing.session(SPEAKER)
    shown = emulator.displayed_pin
    with caplog.at_level(logging.WARNING):
        await provider.handle_player_config_action(SPEAKER, "start_pairing")
    assert provider.pairing.session(SPEAKER) is first
    assert emulator.displayed_pin == shown
    assert "pairing is already in progress" in caplog.text
    await provider.unload()  # abandons the running session and its connection
    assert provider.pairing.session(SPEAKER) is None
    assert first is not None
    assert not first.active


async def test_legacy_pairing_for_a_raop_apple_tv(
    provider: AirPlayProvider, host: RecordingHost, emulator: Ap2Emulator
) -> None:
    player = host.registered[APPLE_TV]
    assert player.needs_pairing
    entries = provider.get_player_config_entries(APPLE_TV)
    assert "RAOP pairing" in entries[0].label
    await provider.handle_player_config_action(APPLE_TV, "start_pairing")
    assert emulator.displayed_pin is not None
    values: dict[str, ConfigValueType] = {"pairing_pin": emulator.displayed_pin}
    await provider.handle_player_config_action(APPLE_TV, "finish_pairing", values)
    credentials = host.values[APPLE_TV]["raop_credentials"]
    assert isinstance(credentials, str)
    assert LegacyCredentials.parse(credentials).user in emulator.device.legacy.paired
    assert player.credentials == credentials
    assert not player.needs_pairing


async def test_unreachable_device_and_unknown_action(
    provider: AirPlayProvider, host: RecordingHost, emulator: Ap2Emulator
) -> None:
    await emulator.stop()
    entries = await provider.handle_player_config_action(SPEAKER, "start_pairing")
    assert keys(entries)[:3] == ["pairing_error", "pairing_instructions", "start_pairing"]
    assert "failed or was lost" in entries[0].label
    with pytest.raises(ValueError, match="unknown pairing action"):
        await provider.handle_player_config_action(SPEAKER, "pair_harder")
    with pytest.raises(KeyError):
        await provider.handle_player_config_action("apffffffffffff", "start_pairing")
