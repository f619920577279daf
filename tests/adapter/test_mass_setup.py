"""The adapter as Music Assistant loads it, against the strict stand-in (no audio)."""

from __future__ import annotations

import socket

import pytest
from music_assistant.models.player import Player
from music_assistant.models.player_provider import PlayerProvider
from music_assistant_models.config_entries import ConfigEntry
from music_assistant_models.enums import PlayerFeature, PlayerType, ProviderFeature, ProviderType
from music_assistant_models.player import PlayerMedia
from zeroconf import ServiceStateChange
from zeroconf._dns import DNSPointer
from zeroconf.const import _CLASS_IN, _TYPE_PTR

import airplay_provider
from airplay_provider.identity import dacp_id_from_seed, is_valid_dacp_id
from airplay_provider.mass.player import MassAirPlayPlayer, user_message
from airplay_provider.session.players import target_for_player
from airplay_provider.session.processes import build_raop_argv
from tests.adapter.mass_fixtures import HOST, RAOP, loaded_provider, manifest, raop_service

MAC = "0A0B0C0D0E11"
PLAYER_ID = "ap0a0b0c0d0e11"


def test_manifest_domain_is_our_own() -> None:
    data = manifest()
    assert data.type is ProviderType.PLAYER
    assert data.domain == "airplay_provider"
    assert data.requirements == []


async def test_setup_refuses_other_objects() -> None:
    with pytest.raises(TypeError, match="Music Assistant's server object"):
        await airplay_provider.setup(object(), manifest(), None)


async def test_loaded_provider_is_a_player_provider_with_stable_dacp_id() -> None:
    async with loaded_provider() as provider:
        assert isinstance(provider, PlayerProvider)
        assert provider.type is ProviderType.PLAYER
        assert provider.domain == "airplay_provider"
        assert provider.instance_id == "airplay_provider--test"
        assert provider.supported_features == {ProviderFeature.SYNC_PLAYERS}
        assert provider.core.dacp_id == dacp_id_from_seed(provider.mass.server_id)
        assert is_valid_dacp_id(provider.core.dacp_id)
        assert provider.core.remote_control is not None  # DACP server up on loopback


async def test_mdns_add_registers_a_player_with_our_entries() -> None:
    async with loaded_provider() as provider:
        mass = provider.mass
        info = raop_service(MAC, "Kitchen", 5000)
        await provider.on_mdns_service_state_change(info.name, ServiceStateChange.Added, info)
        player = mass.players.get_player(PLAYER_ID)
        assert isinstance(player, MassAirPlayPlayer)
        assert player.initialized.is_set()
        assert player.state.name == "Kitchen"
        assert player.state.type is PlayerType.PROTOCOL  # not an Apple device
        assert player.state.available
        assert player.requires_flow_mode
        assert {PlayerFeature.PLAY_MEDIA, PlayerFeature.SET_MEMBERS} <= player.supported_features
        assert player.state.can_group_with == {provider.instance_id}
        assert player.device_info.identifiers  # MAC and IP for protocol linking
        assert provider.players == [player]
        entries = await player.get_config_entries()
        keys = [e.key for e in entries]
        for key in ("airplay_protocol", "encryption", "alac_encode", "password", "sync_adjust",
                    "ignore_volume", "raop_credentials", "airplay_credentials",
                    "ap2_stream_type", "hires_audio"):  # fmt: skip
            assert key in keys, key
        hidden = {e.key for e in entries if e.hidden}
        assert {"raop_credentials", "airplay_credentials", "sample_rates", "output_codec"} <= hidden
        # Shown inside a universal player, whose `depends_on` replaces ours (the protocol's
        # "enabled" toggle): no value condition may stay behind to compare that toggle with.
        conditioned = [e.key for e in entries if e.depends_on_value or e.depends_on_value_not]
        assert conditioned == []
        assert not any(e.depends_on for e in entries)
        assert all(isinstance(e, ConfigEntry) for e in entries)

        await provider.on_mdns_service_state_change(info.name, ServiceStateChange.Removed, None)
        assert mass.players.get_player(PLAYER_ID) is None


async def test_saved_settings_reach_the_core_player_secrets_decrypted() -> None:
    async with loaded_provider() as provider:
        mass = provider.mass
        info = raop_service(MAC, "Kitchen", 5000)
        await provider.on_mdns_service_state_change(info.name, ServiceStateChange.Added, info)
        await mass.config.save_player_config(
            PLAYER_ID,
            {
                "sync_adjust": -40,
                "password": "hunter2",
                "encryption": False,
                "alac_encode": False,
                "ap2_stream_type": "realtime",
                "hires_audio": True,
            },
        )
        stored = mass.config.get_raw_player_config_value(PLAYER_ID, "password")
        assert isinstance(stored, str)
        assert stored != "hunter2"  # Music Assistant keeps it encrypted
        core = provider.core.get_player(PLAYER_ID)
        assert core is not None
        assert core.settings.sync_adjust_ms == -40
        assert core.settings.password == "hunter2"
        assert core.settings.encryption is False
        # ... and the next stream's command line.
        target = target_for_player(core, dacp_id=provider.core.dacp_id)
        argv = build_raop_argv(target, 1 << 32, "/tmp/pipe")
        assert "-encrypt" not in argv
        assert "-alac" not in argv
        assert argv[argv.index("-password") + 1] == "hunter2"
        assert target.sync_adjust_ms == -40
        assert core.settings.ap2_stream_type == "realtime"
        assert target.ap2_stream_type == "realtime"  # cliap2 --stream-type, when it plays AP2
        assert core.settings.hires_audio is True
        assert target.hires is True  # wanted; a RAOP receiver still plays 16-bit/44.1 kHz


async def test_disabled_player_is_not_registered_and_comes_back_when_enabled() -> None:
    async with loaded_provider() as provider:
        mass = provider.mass
        info = raop_service(MAC, "Kitchen", 5000)
        await provider.on_mdns_service_state_change(info.name, ServiceStateChange.Added, info)
        await mass.config.save_player_config(PLAYER_ID, {"enabled": False})
        provider.on_player_disabled(PLAYER_ID)
        await mass.wait_tasks()
        assert mass.players.get_player(PLAYER_ID) is None
        provider.on_player_enabled(PLAYER_ID)
        mass.config.set_raw_player_config_value(PLAYER_ID, "enabled", True)
        await mass.wait_tasks()
        assert mass.players.get_player(PLAYER_ID) is not None


def test_standin_rejects_a_player_with_a_drifted_signature() -> None:
    with pytest.raises(TypeError, match="play_media"):

        class Drifted(Player):  # type: ignore[misc,unused-ignore]
            async def play_media(self, media: PlayerMedia, extra: int = 0) -> None:
                return None


def test_standin_rejects_overriding_a_final_member() -> None:
    with pytest.raises(TypeError, match="final"):
        # (mypy reports the override on the decorator or on the def, depending on its version)
        class Bad(Player):
            @property  # type: ignore[misc,unused-ignore]
            def player_id(self) -> str:  # type: ignore[misc,unused-ignore]
                return "x"


def test_standin_rejects_unknown_attr_fields() -> None:
    player = object.__new__(MassAirPlayPlayer)
    with pytest.raises(AttributeError, match="_attr_volume"):
        player._attr_volume = 3


async def test_cache_replay_with_lower_cased_names_keeps_the_announced_name() -> None:
    """Music Assistant replays its zeroconf cache with lower-cased names on (re)load."""
    async with loaded_provider() as provider:
        info = raop_service(MAC, "Kitchen Speaker", 5000)
        pointer = DNSPointer(RAOP, _TYPE_PTR, _CLASS_IN, 120, info.name)
        provider.mass.aiozc.zeroconf.cache.async_add_records([pointer])
        replayed = info.name.lower()
        assert replayed != info.name
        await provider.on_mdns_service_state_change(replayed, ServiceStateChange.Added, info)
        player = provider.mass.players.get_player(PLAYER_ID)
        assert player is not None
        assert player.state.name == "Kitchen Speaker"


async def test_dacp_port_taken_by_the_builtin_provider_is_skipped() -> None:
    """MA's built-in AirPlay provider binds the first free port from 39831 too."""
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        for port in range(39831, 39900):
            try:
                taken.bind((HOST, port))
                break
            except OSError:
                continue
        taken.listen()
        async with loaded_provider() as provider:
            remote = provider.core.remote_control
            assert remote is not None
            assert remote.port != taken.getsockname()[1]
            assert 39831 <= remote.port <= 49830
    finally:
        taken.close()


async def test_volume_is_kept_for_the_next_registration() -> None:
    async with loaded_provider() as provider:
        mass = provider.mass
        info = raop_service(MAC, "Kitchen", 5000)
        await provider.on_mdns_service_state_change(info.name, ServiceStateChange.Added, info)
        await mass.players.cmd_volume_set(PLAYER_ID, 37)
        await provider.on_mdns_service_state_change(info.name, ServiceStateChange.Removed, None)
        assert mass.players.get_player(PLAYER_ID) is None
        await provider.on_mdns_service_state_change(info.name, ServiceStateChange.Added, info)
        player = mass.players.get_player(PLAYER_ID)
        assert player is not None
        assert player.state.volume_level == 37


def test_user_messages_point_at_the_setting_to_fix() -> None:
    assert "Reset pairing" in user_message(
        "verify pairing failed: pair-verify M2: signature does not verify"
    )
    assert "'Device password'" in user_message("receiver rejected the password")
    assert user_message("connection refused") == "connection refused"
