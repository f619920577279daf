"""Music Assistant packaging: entry point, manifest, setup(), get_config_entries(), MA path."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from music_assistant_models.config_entries import ConfigEntry
from music_assistant_models.enums import PlayerFeature, PlayerType, ProviderType
from music_assistant_models.player import Player, PlayerMedia
from music_assistant_models.provider import ProviderManifest
from zeroconf import ServiceInfo, ServiceStateChange

import airplay_provider
from airplay_provider.host_api import ProviderHost
from airplay_provider.provider import AirPlayProvider
from airplay_provider.session.players import PlaybackError
from tests.recording_host import RecordingHost

ROOT = Path(__file__).resolve().parents[2]
RAOP = "_raop._tcp.local."
AIRPLAY = "_airplay._tcp.local."


def test_pyproject_declares_the_entry_point_and_ships_the_manifest() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["music_assistant.provider"] == {
        "airplay_provider": "airplay_provider"
    }
    assert "manifest.json" in pyproject["tool"]["setuptools"]["package-data"]["airplay_provider"]
    installed = [
        ep
        for ep in importlib.metadata.entry_points(group="music_assistant.provider")
        if ep.name == "airplay_provider"
    ]
    for ep in installed:  # only once pip-installed (CI)
        assert ep.load() is airplay_provider


def test_manifest_is_a_valid_player_manifest() -> None:
    data = json.loads((ROOT / "airplay_provider" / "manifest.json").read_text())
    manifest = ProviderManifest.from_dict(data)
    assert manifest.type is ProviderType.PLAYER
    # Not "airplay": the plugin manager skips a domain Music Assistant already has (built-in).
    assert manifest.domain == "airplay_provider"
    assert manifest.mdns_discovery == ["_airplay._tcp.local.", "_raop._tcp.local."]
    # Music Assistant installs unpinned requirements on import errors only; ours come with pip.
    assert manifest.requirements == []


def test_importing_the_package_is_cheap() -> None:
    code = (
        "import sys, airplay_provider; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('zeroconf', 'music_assistant_models', 'aiohttp', 'cryptography')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"


async def test_module_entry_points() -> None:
    module = importlib.import_module("airplay_provider")
    entries = await module.get_config_entries(None)
    assert all(isinstance(e, ConfigEntry) for e in entries)
    late_join = next(e for e in entries if e.key == "enable_late_join")
    assert late_join.default_value is True
    provider = await module.setup(RecordingHost(), None, None)
    assert isinstance(provider, AirPlayProvider)
    with pytest.raises(TypeError, match="ProviderHost"):
        await module.setup(object(), None, None)


def test_fake_host_satisfies_the_protocol() -> None:
    assert isinstance(RecordingHost(), ProviderHost)


def info(service_type: str, name: str, port: int, txt: dict[str, str], addr: str) -> ServiceInfo:
    return ServiceInfo(
        service_type,
        f"{name}.{service_type}",
        port=port,
        properties=txt,
        server="device.local.",
        addresses=[socket.inet_aton(addr)],
    )


async def started(host: RecordingHost) -> AirPlayProvider:
    provider = await airplay_provider.setup(host, None, None)
    assert isinstance(provider, AirPlayProvider)
    await provider.handle_async_init()
    return provider


async def test_core_fed_mdns_registers_updates_and_removes_players() -> None:
    host = RecordingHost({"ap5855ca1ae288": {"sync_adjust": 25}})
    provider = await started(host)
    try:
        txt = {"deviceid": "58:55:CA:1A:E2:88", "features": "0x4A7FDFD5,0xBC157FDE"}
        txt |= {"flags": "0x244", "model": "AppleTV6,2"}
        added = info(AIRPLAY, "Apple TV", 7000, txt, "192.0.2.20")
        provider.on_mdns_service_state_change(added.name, ServiceStateChange.Added, added)
        await provider.wait_idle()
        player = host.registered["ap5855ca1ae288"]
        assert player.settings.sync_adjust_ms == 25
        assert player.player_type is PlayerType.PLAYER
        assert player.needs_pairing
        assert player.address == "192.0.2.20"
        model = player.to_model(host.instance_id)
        assert isinstance(model, Player)
        assert PlayerFeature.PAUSE in model.supported_features
        assert model.device_info.manufacturer == "Apple"
        assert model.can_group_with == {host.instance_id}

        moved = info(AIRPLAY, "Apple TV", 7000, txt, "192.0.2.21")
        provider.on_mdns_service_state_change(moved.name, ServiceStateChange.Updated, moved)
        await provider.wait_idle()
        assert player.address == "192.0.2.21"
        assert host.updates == ["ap5855ca1ae288"]

        provider.on_mdns_service_state_change(moved.name, ServiceStateChange.Removed, None)
        await provider.wait_idle()
        assert host.unregistered == ["ap5855ca1ae288"]
        assert provider.players == {}
    finally:
        await provider.unload()


async def test_disabled_broken_and_own_receivers() -> None:
    host = RecordingHost({"ap001122334455": {"enabled": False}})
    host.own_ports = [5101]
    provider = await started(host)
    try:
        events = [
            info(RAOP, "001122334455@Off", 5000, {"am": "AirPort4,107"}, "192.0.2.30"),
            info(
                AIRPLAY,
                "TV",
                7000,
                {"deviceid": "8C:79:F5:00:11:22", "manufacturer": "Samsung", "model": "Q"},
                "192.0.2.31",
            ),
            info(RAOP, "D2D62975FB1A@me", 5101, {"am": "ShairportSync"}, "127.0.0.1"),
            info(RAOP, "D2D62975FB1B@lab", 5102, {"am": "ShairportSync"}, "127.0.0.1"),
        ]
        for event in events:
            provider.on_mdns_service_state_change(event.name, ServiceStateChange.Added, event)
        await provider.wait_idle()
        assert sorted(host.registered) == ["ap8c79f5001122", "apd2d62975fb1b"]
        samsung = host.registered["ap8c79f5001122"]
        assert samsung.enabled is False
        assert samsung.player_type is PlayerType.PROTOCOL
        assert provider.get_player_config_entries("ap8c79f5001122")[-2].key == "broken_airplay"
    finally:
        await provider.unload()


async def test_unreachable_receiver_gives_a_clear_playback_error() -> None:
    # Loopback only: a port nothing listens on stands for a receiver that went away.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    host = RecordingHost()
    provider = await started(host)
    try:
        event = info(RAOP, "001122334455@Den", closed_port, {}, "127.0.0.1")
        provider.on_mdns_service_state_change(event.name, ServiceStateChange.Added, event)
        await provider.wait_idle()
        media = PlayerMedia(uri="flow://queue")
        with pytest.raises(PlaybackError, match="Den"):
            await provider.play_media("ap001122334455", media)
        with pytest.raises(KeyError, match="apffffffffffff"):
            await provider.cmd_stop("apffffffffffff")
        await provider.cmd_volume_set("ap001122334455", 140)
        assert host.registered["ap001122334455"].state.volume_level == 100
    finally:
        await provider.unload()
