"""Config entries, validation of user values, and the standalone config file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from music_assistant_models.config_entries import ConfigEntry
from music_assistant_models.enums import ConfigEntryType

from airplay_provider.config import (
    CONF_AIRPLAY_LATENCY,
    CONF_AIRPLAY_PROTOCOL,
    CONF_AP2_STREAM_TYPE,
    CONF_BROKEN_ALERT,
    CONF_ENABLED,
    CONF_ENCRYPTION,
    CONF_HIRES_AUDIO,
    CONF_SYNC_ADJUST,
    ConfigValidationError,
    PlayerSettings,
    player_config_entries,
    provider_config_entries,
    validate_values,
)
from airplay_provider.config_text import parse_interfaces, parse_text_value
from airplay_provider.host.cmd_config import LookupFailedError, parse_assignments, resolve_target
from airplay_provider.host.config_store import ConfigStore, ConfigStoreError, default_config_path
from airplay_provider.protocol.txt import (
    AIRPLAY_SERVICE_TYPE,
    DeviceRecord,
    ProtocolPreference,
    merge_records,
    parse_service,
)


def entry(key: str) -> ConfigEntry:
    return next(e for e in player_config_entries(include_enabled=True) if e.key == key)


def samsung() -> DeviceRecord:
    record = parse_service(
        AIRPLAY_SERVICE_TYPE,
        "TV._airplay._tcp.local.",
        port=7000,
        addresses=["192.0.2.7"],
        properties={"deviceid": "8C:79:F5:00:11:22", "manufacturer": "Samsung", "model": "Q"},
    )
    return merge_records(None, record)


def test_sync_adjust_out_of_range_is_refused_with_a_message() -> None:
    with pytest.raises(ConfigValidationError) as caught:
        validate_values(player_config_entries(), {CONF_SYNC_ADJUST: 900})
    assert str(caught.value) == "sync_adjust must be between -500 and 500 ms, got 900"
    assert caught.value.key == CONF_SYNC_ADJUST
    with pytest.raises(ConfigValidationError, match="got -501"):
        parse_text_value(entry(CONF_SYNC_ADJUST), "-501")


def test_sync_adjust_limits_are_accepted() -> None:
    assert validate_values(player_config_entries(), {CONF_SYNC_ADJUST: -500}) == {
        CONF_SYNC_ADJUST: -500
    }
    assert parse_text_value(entry(CONF_SYNC_ADJUST), "500") == 500


def test_types_are_checked() -> None:
    with pytest.raises(ConfigValidationError, match="whole number"):
        validate_values(player_config_entries(), {CONF_SYNC_ADJUST: "12"})
    with pytest.raises(ConfigValidationError, match="whole number"):
        validate_values(player_config_entries(), {CONF_SYNC_ADJUST: True})
    with pytest.raises(ConfigValidationError, match="true or false"):
        validate_values(player_config_entries(), {CONF_ENCRYPTION: 1})
    with pytest.raises(ConfigValidationError, match="whole number, got 'ten'"):
        parse_text_value(entry(CONF_AIRPLAY_LATENCY), "ten")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("On", True), ("1", True), ("no", False), ("FALSE", False)],
)
def test_boolean_words(text: str, expected: bool) -> None:
    assert parse_text_value(entry(CONF_ENCRYPTION), text) is expected


def test_boolean_garbage() -> None:
    with pytest.raises(ConfigValidationError, match="encryption must be true or false"):
        parse_text_value(entry(CONF_ENCRYPTION), "maybe")


def test_protocol_words_and_options() -> None:
    protocol = entry(CONF_AIRPLAY_PROTOCOL)
    assert parse_text_value(protocol, "airplay2") == 2
    assert parse_text_value(protocol, "raop") == 1
    assert parse_text_value(protocol, "0") == 0
    with pytest.raises(ConfigValidationError, match="must be one of 0"):
        parse_text_value(protocol, "3")


def test_hires_audio_is_an_opt_in_for_airplay_2_players() -> None:
    hires = entry(CONF_HIRES_AUDIO)
    assert hires.type is ConfigEntryType.BOOLEAN
    assert hires.default_value is False
    assert "24-bit/48 kHz" in hires.label
    assert hires.description is not None
    assert "buffered" in hires.description
    assert "HomePod" in hires.description
    assert hires.depends_on == CONF_AIRPLAY_PROTOCOL
    assert hires.depends_on_value_not == int(ProtocolPreference.RAOP)
    assert PlayerSettings.from_values({}).hires_audio is False
    assert PlayerSettings.from_values({CONF_HIRES_AUDIO: True}).hires_audio is True
    with pytest.raises(ConfigValidationError, match="true or false"):
        PlayerSettings.from_values({CONF_HIRES_AUDIO: "24"})
    entries = player_config_entries(include_enabled=True)
    assert parse_assignments(entries, ["hires_audio=on"]) == {CONF_HIRES_AUDIO: True}
    assert parse_assignments(entries, ["hires_audio=no"]) == {CONF_HIRES_AUDIO: False}


def test_ap2_stream_type_choices() -> None:
    stream_type = entry(CONF_AP2_STREAM_TYPE)
    assert stream_type.default_value == "auto"
    # shown unless the player is set to AirPlay 1 (the setting only matters to cliap2)
    assert stream_type.depends_on == CONF_AIRPLAY_PROTOCOL
    assert stream_type.depends_on_value_not == int(ProtocolPreference.RAOP)
    for word in ("auto", "realtime", "buffered"):
        assert parse_text_value(stream_type, word) == word
    assert parse_text_value(stream_type, " Buffered ") == "buffered"
    with pytest.raises(ConfigValidationError, match="ap2_stream_type must be one of auto"):
        parse_text_value(stream_type, "udp")
    with pytest.raises(ConfigValidationError, match="must be one of"):
        validate_values(player_config_entries(), {CONF_AP2_STREAM_TYPE: "tcp"})
    with pytest.raises(ConfigValidationError, match="must be text"):
        validate_values(player_config_entries(), {CONF_AP2_STREAM_TYPE: 103})
    assert PlayerSettings.from_values({}).ap2_stream_type == "auto"
    settings = PlayerSettings.from_values({CONF_AP2_STREAM_TYPE: "buffered"})
    assert settings.ap2_stream_type == "buffered"
    with pytest.raises(ConfigValidationError):
        PlayerSettings.from_values({CONF_AP2_STREAM_TYPE: "fast"})
    entries = player_config_entries(include_enabled=True)
    assert parse_assignments(entries, ["ap2_stream_type=realtime"]) == {
        CONF_AP2_STREAM_TYPE: "realtime"
    }
    assert parse_assignments(entries, ["ap2_stream_type="]) == {CONF_AP2_STREAM_TYPE: None}


def test_unknown_key_lists_known_settings() -> None:
    with pytest.raises(ConfigValidationError, match=r"unknown setting 'volume'.*sync_adjust"):
        validate_values(player_config_entries(), {"volume": 3})


def test_player_settings_from_values() -> None:
    assert PlayerSettings.from_values({}) == PlayerSettings()
    settings = PlayerSettings.from_values(
        {CONF_AIRPLAY_PROTOCOL: 2, CONF_SYNC_ADJUST: -120, "password": "", "other": 1}
    )
    assert settings.protocol is ProtocolPreference.AIRPLAY2
    assert settings.sync_adjust_ms == -120
    assert settings.password is None
    assert settings.output_buffer_ms == 2000
    with pytest.raises(ConfigValidationError):
        PlayerSettings.from_values({CONF_SYNC_ADJUST: 900})


def test_entries_are_valid_music_assistant_entries() -> None:
    entries = [*provider_config_entries(), *player_config_entries(include_enabled=True)]
    keys = [e.key for e in entries]
    assert len(keys) == len(set(keys))
    for config_entry in entries:
        assert ConfigEntry.from_dict(config_entry.to_dict()) == config_entry
        if config_entry.default_value is not None:
            assert (
                config_entry.parse_value(config_entry.default_value) == config_entry.default_value
            )
    hidden = {e.key for e in entries if e.hidden}
    assert hidden == {"raop_credentials", "airplay_credentials"}
    sync = entry(CONF_SYNC_ADJUST)
    assert sync.range == (-500, 500)
    assert sync.type is ConfigEntryType.INTEGER


def test_broken_model_gets_an_alert_and_starts_disabled() -> None:
    device = samsung()
    entries = player_config_entries(device, include_enabled=True)
    assert entries[-2].key == CONF_BROKEN_ALERT
    assert entries[-2].type is ConfigEntryType.ALERT
    assert "Samsung" in entries[-2].label
    enabled = next(e for e in entries if e.key == CONF_ENABLED)
    assert enabled.default_value is False
    assert all(e.key != CONF_BROKEN_ALERT for e in player_config_entries())
    with pytest.raises(ConfigValidationError, match="not a setting"):
        validate_values(entries, {CONF_BROKEN_ALERT: "x"})


def test_parse_interfaces() -> None:
    assert parse_interfaces("") is None
    assert parse_interfaces(" 127.0.0.1 , ::1 ") == ["127.0.0.1", "::1"]
    with pytest.raises(ConfigValidationError, match="'eth0' is not an IP address"):
        parse_interfaces("eth0")


def test_cli_assignments() -> None:
    entries = player_config_entries(include_enabled=True)
    changes = parse_assignments(entries, ["sync_adjust=-20", "encryption=off", "password="])
    assert changes == {"sync_adjust": -20, "encryption": False, "password": None}
    with pytest.raises(ConfigValidationError, match="expected KEY=VALUE"):
        parse_assignments(entries, ["sync_adjust"])
    with pytest.raises(ConfigValidationError, match="unknown setting 'colour'"):
        parse_assignments(entries, ["colour=red"])
    with pytest.raises(ConfigValidationError, match="between -500 and 500 ms, got 900"):
        parse_assignments(entries, ["sync_adjust=900"])


@pytest.mark.parametrize("key", ["airplay_credentials", "raop_credentials"])
def test_cli_refuses_to_set_pairing_credentials_by_hand(key: str) -> None:
    entries = player_config_entries(include_enabled=True)
    with pytest.raises(ConfigValidationError, match="airplay-provider pair"):
        parse_assignments(entries, [f"{key}=abc"])
    assert parse_assignments(entries, [f"{key}="]) == {key: None}  # forgetting is allowed
    with pytest.raises(ConfigValidationError) as unknown:
        parse_assignments(entries, ["colour=red"])
    assert key not in str(unknown.value)  # not offered as a setting


# --- config file -----------------------------------------------------------------------------


def test_store_round_trip_with_private_mode(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "config.json"
    store = ConfigStore(path)
    store.load()
    assert store.player_ids() == []
    store.set_player_values("apaabbccddeeff", {"sync_adjust": 40, "password": "pw"}, name="Den")
    store.set_provider_values({"enable_late_join": False})
    store.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]  # no temp left
    again = ConfigStore(path)
    again.load()
    assert again.player_values("apaabbccddeeff") == {"sync_adjust": 40, "password": "pw"}
    assert again.player_name("apaabbccddeeff") == "Den"
    assert again.find_players("den") == ["apaabbccddeeff"]
    assert again.find_players("APAABBCCDDEEFF") == ["apaabbccddeeff"]
    assert again.provider_values() == {"enable_late_join": False}
    again.set_player_values("apaabbccddeeff", {"password": None})
    again.save()
    assert json.loads(path.read_text())["players"]["apaabbccddeeff"]["values"] == {
        "sync_adjust": 40
    }


def test_store_tightens_mode_of_an_existing_loose_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"version": 1, "provider": {}, "players": {}}')
    path.chmod(0o644)
    store = ConfigStore(path)
    store.load()
    store.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"version": 7}', "version 1"),
        ('{"version": 1, "players": []}', "must be objects"),
        ('{"version": 1, "players": {"ap1": {"values": 3}}}', "malformed"),
    ],
)
def test_store_refuses_corrupt_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ConfigStoreError, match=message):
        ConfigStore(path).load()


def test_default_path_honours_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRPLAY_PROVIDER_CONFIG", str(tmp_path / "x.json"))
    assert default_config_path() == tmp_path / "x.json"
    monkeypatch.delenv("AIRPLAY_PROVIDER_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_config_path() == tmp_path / ".config/airplay-provider/config.json"


def test_store_write_failure_is_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root ignores directory permissions; a path under a regular file fails for everyone
        blocker = tmp_path / "file"
        blocker.write_text("")
        store = ConfigStore(blocker / "config.json")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        store = ConfigStore(locked / "config.json")
    with pytest.raises(ConfigStoreError, match="cannot"):
        store.save()


# --- finding the player a `config` command is about ------------------------------------------


def device(mac: str, name: str) -> DeviceRecord:
    record = parse_service(
        AIRPLAY_SERVICE_TYPE,
        f"{name}._airplay._tcp.local.",
        port=7000,
        addresses=["192.0.2.9"],
        properties={"deviceid": mac},
    )
    return merge_records(None, record)


def test_resolve_target_by_name_id_and_substring(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "c.json")
    devices = [
        device("00:00:00:00:00:01", "Kitchen"),
        device("00:00:00:00:00:02", "Kitchen Annex"),
        device("00:00:00:00:00:03", "Bedroom"),
    ]
    assert resolve_target(store, "kitchen", devices).player_id == "ap000000000001"
    assert resolve_target(store, "ap000000000002", devices).name == "Kitchen Annex"
    assert resolve_target(store, "bed", devices).player_id == "ap000000000003"
    with pytest.raises(LookupFailedError, match=r"'itch' is ambiguous: .*Kitchen \(ap0+1\)"):
        resolve_target(store, "itch", devices)
    with pytest.raises(LookupFailedError, match="receivers seen: Bedroom, Kitchen, Kitchen Annex"):
        resolve_target(store, "Garage", devices)
    with pytest.raises(LookupFailedError, match="receivers seen: none"):
        resolve_target(store, "Garage", [])


def test_resolve_target_prefers_stored_players(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "c.json")
    store.set_player_values("ap0000000000aa", {"sync_adjust": 1}, name="Den")
    store.set_player_values("ap0000000000bb", {"sync_adjust": 2}, name="den")
    store.set_player_values("ap0000000000cc", {"sync_adjust": 3}, name="Hall")
    target = resolve_target(store, "hall", None)
    assert (target.player_id, target.name, target.device) == ("ap0000000000cc", "Hall", None)
    with pytest.raises(LookupFailedError, match="ambiguous"):
        resolve_target(store, "DEN", None)
