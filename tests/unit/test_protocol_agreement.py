"""`discover` shows the protocol `play` streams with: the same choice from the same inputs
(the device's records, the user's stored protocol setting), for every kind of device."""

from __future__ import annotations

from pathlib import Path

import pytest

from airplay_provider.config import CONF_AIRPLAY_PROTOCOL
from airplay_provider.host.cmd_discover import format_table, protocol_name, stored_settings
from airplay_provider.host.config_store import ConfigStore
from airplay_provider.host.standalone import StandaloneHost
from airplay_provider.protocol.txt import (
    AIRPLAY_SERVICE_TYPE,
    RAOP_SERVICE_TYPE,
    DeviceRecord,
    ProtocolPreference,
    StreamingProtocol,
    merge_records,
    parse_service,
)
from airplay_provider.provider import AirPlayProvider
from airplay_provider.session.players import target_for_player

AP2_FEATURES = "0x4A7FCA00,0x3C356BD0"  # a HomePod: bits 38 and 48 set
CLASSIC_FEATURES = "0x5A7FFFF7,0x1E"  # an AirPort Express 2: neither
NAMES = {StreamingProtocol.RAOP: "raop", StreamingProtocol.AIRPLAY2: "airplay2"}


def device(mac: str, name: str, *, raop: bool, airplay: str | None) -> DeviceRecord:
    """A receiver with a `_raop` record (when `raop`) and an `_airplay` one with `airplay`
    features (when given)."""
    raop_record = airplay_record = None
    if raop:
        raop_record = parse_service(
            RAOP_SERVICE_TYPE,
            f"{mac}@{name}.{RAOP_SERVICE_TYPE}",
            port=5000,
            addresses=["127.0.0.1"],
            properties={"md": "0,1,2", "tp": "UDP", "cn": "0,1", "am": "Test1,1"},
        )
    if airplay is not None:
        colon = ":".join(mac[i : i + 2] for i in range(0, 12, 2))
        airplay_record = parse_service(
            AIRPLAY_SERVICE_TYPE,
            f"{name}.{AIRPLAY_SERVICE_TYPE}",
            port=7000,
            addresses=["127.0.0.1"],
            properties={"deviceid": colon, "features": airplay, "model": "Test1,1"},
        )
    return merge_records(raop_record, airplay_record)


DEVICES = {
    "homepod": device("02AA00000001", "Homepod", raop=True, airplay=AP2_FEATURES),
    "classic": device("02AA00000002", "Classic", raop=True, airplay=CLASSIC_FEATURES),
    "airplay-only": device("02AA00000003", "Only AirPlay", raop=False, airplay=AP2_FEATURES),
    "raop-only": device("02AA00000004", "Only RAOP", raop=True, airplay=None),
}
AUTO, RAOP, AP2 = ProtocolPreference.AUTO, ProtocolPreference.RAOP, ProtocolPreference.AIRPLAY2
EXPECTED = {  # (device, the user's setting) → what is streamed
    ("homepod", AUTO): "airplay2",
    ("homepod", RAOP): "raop",
    ("homepod", AP2): "airplay2",
    ("classic", AUTO): "raop",
    ("classic", RAOP): "raop",
    ("classic", AP2): "airplay2",
    ("airplay-only", AUTO): "airplay2",
    ("airplay-only", RAOP): "airplay2",  # the only route there is
    ("airplay-only", AP2): "airplay2",
    ("raop-only", AUTO): "raop",
    ("raop-only", RAOP): "raop",
    ("raop-only", AP2): "raop",
}


@pytest.mark.parametrize(("kind", "preference"), list(EXPECTED), ids=str)
async def test_discover_and_play_choose_the_same_protocol(
    tmp_path: Path, kind: str, preference: ProtocolPreference
) -> None:
    record = DEVICES[kind]
    store = ConfigStore(tmp_path / "config.json")
    if preference is not AUTO:
        store.set_player_values(record.player_id, {CONF_AIRPLAY_PROTOCOL: int(preference)})
    store.save()
    store.load()
    # play's side: the standalone host and provider `play` builds, the target it streams to
    host = StandaloneHost(store)
    provider = AirPlayProvider(host, browse=False)
    await provider.device_added(record)
    target = target_for_player(host.players[record.player_id])
    shown = protocol_name(record, stored_settings(store)(record))
    assert NAMES[target.protocol] == shown == EXPECTED[kind, preference]
    if target.protocol is StreamingProtocol.AIRPLAY2:  # cliap2 to the `_airplay` port
        assert target.port == record.airplay_port == 7000
    else:
        assert target.port == record.raop_port == 5000
    table = format_table([record], stored_settings(store))
    assert table.splitlines()[1][len(record.name) :].split()[0] == shown.upper()
    await provider.unload()


def test_an_unreadable_setting_shows_what_play_falls_back_to(tmp_path: Path) -> None:
    record = DEVICES["homepod"]
    store = ConfigStore(tmp_path / "config.json")
    store.set_player_values(record.player_id, {CONF_AIRPLAY_PROTOCOL: 7})  # not an option
    assert protocol_name(record, stored_settings(store)(record)) == "airplay2"  # defaults
    assert protocol_name(record, stored_settings(None)(record)) == "airplay2"
