"""TXT records → DeviceRecord: real devices' records, feature bits, flags, address, protocol."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airplay_provider.protocol.txt import (
    AIRPLAY_SERVICE_TYPE,
    RAOP_SERVICE_TYPE,
    DeviceRecord,
    ProtocolPreference,
    ProtocolUnavailableError,
    ServiceKind,
    ServiceRecord,
    StreamingProtocol,
    TxtError,
    choose_address,
    choose_protocol,
    is_own_receiver,
    merge_records,
    parse_service,
    rank_addresses,
)

# --- fixtures: TXT records of real devices ---------------------------------------------------
# shairport-sync 3.3.8 (Debian 12): captured from the receiver lab on lo, verbatim.
SHAIRPORT_CLASSIC_RAOP = {
    "sf": "0x4", "fv": "76400.10", "am": "ShairportSync", "vs": "105.1", "tp": "TCP,UDP",
    "vn": "65537", "ss": "16", "sr": "44100", "da": "true", "sv": "false", "et": "0,1",
    "ek": "1", "cn": "0,1", "ch": "2", "txtvers": "1", "pw": "false",
}  # fmt: skip
# shairport-sync 4.x AirPlay 2 build: the records its build_bonjour_strings() publishes.
SHAIRPORT_AP2_RAOP = {
    "cn": "0,1", "da": "true", "et": "0,4", "ft": "0x405C4A00,0x1C340", "fv": "4.3.2",
    "md": "2", "am": "Shairport Sync", "sf": "0x4", "tp": "UDP", "vn": "65537", "vs": "366.0",
    "pk": "f2d11075802298c0907285d833b6dd08b04240987f1c95233ab9251e732925f7",
}  # fmt: skip
SHAIRPORT_AP2_AIRPLAY = {
    "srcvers": "366.0", "deviceid": "DC:A6:32:11:22:33", "features": "0x405C4A00,0x1C340",
    "flags": "0x4", "protovers": "1.1", "acl": "0", "rsf": "0x0", "fv": "4.3.2",
    "model": "Shairport Sync", "pi": "5b1b2c1a-6a1e-4d5e-9d4e-0a1b2c3d4e5f",
    "gid": "5b1b2c1a-6a1e-4d5e-9d4e-0a1b2c3d4e5f", "gcgl": "0",
    "pk": "f2d11075802298c0907285d833b6dd08b04240987f1c95233ab9251e732925f7",
}  # fmt: skip
# HomePod (gen 1): features/flags/model/srcvers as quoted in OwnTone's airplay.c comments.
HOMEPOD_AIRPLAY = {
    "deviceid": "F0:B3:EC:12:34:56", "features": "0x4A7FCA00,0x3C356BD0", "flags": "0x1a404",
    "model": "AudioAccessory1,1", "srcvers": "530.6", "protovers": "1.1", "acl": "0",
    "pi": "0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6",
}  # fmt: skip
HOMEPOD_RAOP = {
    "cn": "0,1,2,3", "da": "true", "et": "0,3,5", "ft": "0x4A7FCA00,0x3C356BD0",
    "sf": "0x1a404", "md": "0,1,2", "am": "AudioAccessory1,1", "tp": "UDP", "vn": "65537",
    "vs": "530.6", "vv": "2",
}  # fmt: skip
# HomePod mini _raop record as published by third-party senders' device examples.
HOMEPOD_MINI_RAOP = {
    "cn": "0,1,2,3", "da": "true", "et": "0,3,5", "ft": "0x4A7FCA00,0xBC354BD0",
    "sf": "0x80404", "md": "0,1,2", "am": "AudioAccessory5,1", "tp": "UDP", "vn": "65537",
    "vs": "610.20.41", "ov": "15.4.1", "vv": "2",
}  # fmt: skip
# Apple TV 4K with "require pairing" (flags bit 0x200).
APPLE_TV_AIRPLAY = {
    "deviceid": "58:55:CA:1A:E2:88", "features": "0x4A7FDFD5,0xBC157FDE", "flags": "0x244",
    "model": "AppleTV6,2", "srcvers": "595.13.1", "protovers": "1.1", "acl": "0",
}  # fmt: skip
APPLE_TV_RAOP = {
    "cn": "0,1,2,3", "da": "true", "et": "0,3,5", "ft": "0x4A7FDFD5,0xBC157FDE", "sf": "0x244",
    "md": "0,1,2", "am": "AppleTV6,2", "tp": "UDP", "vn": "65537", "vs": "595.13.1",
}  # fmt: skip
# AirPort Express gen 2 (fw 7.8): features/model/srcvers as in OwnTone's comments.
AIRPORT_EXPRESS2_AIRPLAY = {
    "deviceid": "48:D7:05:AA:BB:CC", "features": "0x445D0A00,0x1C340", "flags": "0x4",
    "model": "AirPort10,115", "srcvers": "366.0", "protovers": "1.1",
}  # fmt: skip
AIRPORT_EXPRESS2_RAOP = {
    "cn": "0,1", "ch": "2", "ek": "1", "et": "0,1,4", "ft": "0x445D0A00,0x1C340", "sf": "0x4",
    "md": "0,1,2", "am": "AirPort10,115", "pw": "false", "sr": "44100", "ss": "16",
    "tp": "UDP", "vn": "65537", "vs": "366.0", "txtvers": "1",
}  # fmt: skip
# AirPort Express gen 1: RAOP only, no features word.
AIRPORT_EXPRESS1_RAOP = {
    "txtvers": "1", "ch": "2", "cn": "0,1", "et": "0,1", "sv": "false", "ek": "1",
    "sm": "false", "tp": "UDP", "vn": "65537", "pw": "false", "sr": "44100", "ss": "16",
    "am": "AirPort4,107", "vs": "105.1",
}  # fmt: skip
# Sonos: features/flags/srcvers as in OwnTone's comments; manufacturer/model in the record.
SONOS_AIRPLAY = {
    "deviceid": "34:7E:5C:01:02:03", "features": "0x445F8A00,0x1C340", "flags": "0x4",
    "srcvers": "366.0", "manufacturer": "Sonos", "model": "One", "protovers": "1.1",
}  # fmt: skip
SAMSUNG_AIRPLAY = {
    "deviceid": "8C:79:F5:00:11:22", "features": "0x7F8AD0,0x38BCF46", "flags": "0x4",
    "manufacturer": "Samsung", "model": "QN90B", "srcvers": "377.25.06",
}  # fmt: skip


def raop(
    mac: str, name: str, txt: dict[str, str], port: int = 7000, addr: str = "192.0.2.10"
) -> ServiceRecord:
    return parse_service(
        RAOP_SERVICE_TYPE,
        f"{mac}@{name}.{RAOP_SERVICE_TYPE}",
        port=port,
        addresses=[addr],
        properties={k.encode(): v.encode() for k, v in txt.items()},
        hostname=f"{name.replace(' ', '-')}.local.",
    )


def airplay(
    name: str, txt: dict[str, str], port: int = 7000, addr: str = "192.0.2.10"
) -> ServiceRecord:
    return parse_service(
        AIRPLAY_SERVICE_TYPE,
        f"{name}.{AIRPLAY_SERVICE_TYPE}",
        port=port,
        addresses=[addr],
        properties=txt,
        hostname=f"{name.replace(' ', '-')}.local.",
    )


@pytest.mark.parametrize(
    (
        "raop_args",
        "airplay_args",
        "expected",
    ),
    [
        pytest.param(
            ("D2D62975FB1A", "devpeer1", SHAIRPORT_CLASSIC_RAOP),
            None,
            ("apd2d62975fb1a", "devpeer1", "AirPlay", "ShairportSync", False, False, 0x4),
            id="shairport-sync-classic",
        ),
        pytest.param(
            ("DCA632112233", "Pi Speaker", SHAIRPORT_AP2_RAOP),
            ("Pi Speaker", SHAIRPORT_AP2_AIRPLAY),
            ("apdca632112233", "Pi Speaker", "AirPlay", "Shairport Sync", True, False, 0x4),
            id="shairport-sync-airplay2",
        ),
        pytest.param(
            ("F0B3EC123456", "Living Room", HOMEPOD_RAOP),
            ("Living Room", HOMEPOD_AIRPLAY),
            ("apf0b3ec123456", "Living Room", "Apple", "HomePod", True, False, 0x1A404),
            id="homepod",
        ),
        pytest.param(
            ("AABBCCDDEEFF", "Bedroom", HOMEPOD_MINI_RAOP),
            None,
            ("apaabbccddeeff", "Bedroom", "Apple", "HomePod Mini", False, False, 0x80404),
            id="homepod-mini-raop-only",
        ),
        pytest.param(
            ("5855CA1AE288", "Apple TV", APPLE_TV_RAOP),
            ("Apple TV", APPLE_TV_AIRPLAY),
            ("ap5855ca1ae288", "Apple TV", "Apple", "Apple TV 4K", True, True, 0x244),
            id="apple-tv-4k",
        ),
        pytest.param(
            ("48D705AABBCC", "Kitchen", AIRPORT_EXPRESS2_RAOP),
            ("Kitchen", AIRPORT_EXPRESS2_AIRPLAY),
            ("ap48d705aabbcc", "Kitchen", "Apple", "AirPort Express", True, False, 0x4),
            id="airport-express-2",
        ),
        pytest.param(
            ("001EC2AABB01", "Study", AIRPORT_EXPRESS1_RAOP),
            None,
            ("ap001ec2aabb01", "Study", "Apple", "AirPort Express", False, False, 0),
            id="airport-express-1",
        ),
        pytest.param(
            None,
            ("Office", SONOS_AIRPLAY),
            ("ap347e5c010203", "Office", "Sonos", "One", True, False, 0x4),
            id="sonos",
        ),
    ],
)
def test_real_device_records(
    raop_args: tuple[str, str, dict[str, str]] | None,
    airplay_args: tuple[str, dict[str, str]] | None,
    expected: tuple[str, str, str, str, bool, bool, int],
) -> None:
    raop_record = raop(*raop_args) if raop_args else None
    airplay_record = airplay(*airplay_args) if airplay_args else None
    device = merge_records(raop_record, airplay_record)
    player_id, name, manufacturer, model, ap2, pairing, flags = expected
    assert device.player_id == player_id
    assert device.name == name
    assert (device.manufacturer, device.model) == (manufacturer, model)
    assert device.supports_airplay2 is ap2
    assert device.pairing_required is pairing
    assert device.status_flags == flags
    assert device.password_required is False
    assert device.address == "192.0.2.10"
    assert device.problems == ()


def test_homepod_merge_keeps_both_ports_and_features() -> None:
    device = merge_records(
        raop("F0B3EC123456", "Living Room", HOMEPOD_RAOP, port=7000),
        airplay("Living Room", HOMEPOD_AIRPLAY, port=7001),
    )
    assert device.raop_port == 7000
    assert device.airplay_port == 7001
    assert device.features == 0x3C356BD0_4A7FCA00
    assert device.model_id == "AudioAccessory1,1"
    assert device.hostname == "Living-Room.local."
    assert device.is_apple
    assert device.raop is not None
    assert device.raop.kind is ServiceKind.RAOP


def test_samsung_is_flagged_broken_and_not_apple() -> None:
    device = merge_records(None, airplay("TV", SAMSUNG_AIRPLAY))
    assert device.is_broken
    assert not device.is_apple
    sonos = merge_records(None, airplay("Office", SONOS_AIRPLAY))
    assert not sonos.is_broken


@pytest.mark.parametrize(
    ("record", "flags_key", "flags", "required"),
    [
        ("airplay", "flags", "0x200", True),
        ("airplay", "flags", "0x201", True),
        ("airplay", "flags", "0x4", False),
        ("airplay", "flags", "0x8", True),
        ("airplay", "flags", "0x9", True),
        ("raop", "sf", "0x200", True),
        ("raop", "sf", "0x201", True),
        ("raop", "sf", "0x4", False),
        ("raop", "sf", "0x8", True),
        ("raop", "sf", "0x9", True),
        ("raop", "sf", None, False),
    ],
)
def test_pairing_required_from_either_record(
    record: str, flags_key: str, flags: str | None, required: bool
) -> None:
    txt = {flags_key: flags} if flags else {}
    if record == "airplay":
        device = merge_records(None, airplay("X", {"deviceid": "00:11:22:33:44:55", **txt}))
    else:
        device = merge_records(raop("001122334455", "X", txt), None)
    assert device.pairing_required is required


def test_password_required_from_flag_or_pw() -> None:
    by_pw = merge_records(raop("001122334455", "X", {"pw": "true"}), None)
    by_flag = merge_records(raop("001122334455", "X", {"sf": "0x80"}), None)
    neither = merge_records(raop("001122334455", "X", {"pw": "false", "sf": "0x4"}), None)
    assert by_pw.password_required
    assert by_flag.password_required
    assert not neither.password_required


def test_airplay_record_wins_over_raop_for_flags_and_name() -> None:
    device = merge_records(
        raop("001122334455", "Old Name", {"sf": "0x4", "am": "AppleTV3,2"}),
        airplay("New Name", {"deviceid": "00:11:22:33:44:55", "flags": "0x200"}),
    )
    assert device.name == "New Name"
    assert device.status_flags == 0x200
    assert device.model == "Apple TV Gen3"  # `am` from _raop when _airplay has no model


# --- protocol choice -------------------------------------------------------------------------


@pytest.fixture
def homepod() -> DeviceRecord:
    return merge_records(
        raop("F0B3EC123456", "Living Room", HOMEPOD_RAOP),
        airplay("Living Room", HOMEPOD_AIRPLAY),
    )


def test_protocol_auto_is_airplay2_by_feature_bits(homepod: DeviceRecord) -> None:
    assert choose_protocol(homepod) is StreamingProtocol.AIRPLAY2  # cliap2 is always here
    assert choose_protocol(homepod, ap2_available=False) is StreamingProtocol.RAOP


def test_protocol_forced_choices(homepod: DeviceRecord) -> None:
    raop_pref, ap2_pref = ProtocolPreference.RAOP, ProtocolPreference.AIRPLAY2
    assert choose_protocol(homepod, raop_pref, ap2_available=True) is StreamingProtocol.RAOP
    assert choose_protocol(homepod, ap2_pref, ap2_available=True) is StreamingProtocol.AIRPLAY2
    # forced AirPlay 2 without cliap2: falls back to RAOP
    assert choose_protocol(homepod, ap2_pref, ap2_available=False) is StreamingProtocol.RAOP


def test_protocol_auto_on_classic_device_is_raop() -> None:
    device = merge_records(
        raop("48D705AABBCC", "K", AIRPORT_EXPRESS1_RAOP),
        airplay("K", {"deviceid": "48:D7:05:AA:BB:CC", "features": "0x5A7FFFF7,0x1E"}),
    )
    assert not device.supports_airplay2
    assert choose_protocol(device, ap2_available=True) is StreamingProtocol.RAOP


def test_airplay2_only_device_without_streamer_is_unavailable() -> None:
    sonos = merge_records(None, airplay("Office", SONOS_AIRPLAY))
    assert choose_protocol(sonos, ap2_available=True) is StreamingProtocol.AIRPLAY2
    with pytest.raises(ProtocolUnavailableError, match="Office"):
        choose_protocol(sonos, ProtocolPreference.RAOP, ap2_available=False)


# --- bad input -------------------------------------------------------------------------------


def test_records_without_identity_are_refused() -> None:
    with pytest.raises(TxtError, match="MAC"):
        raop("not-a-mac", "X", {})
    with pytest.raises(TxtError, match="prefix"):
        parse_service(RAOP_SERVICE_TYPE, "NoAt._raop._tcp.local.", port=1, addresses=[],
                      properties={})  # fmt: skip
    with pytest.raises(TxtError, match="deviceid"):
        airplay("X", {"features": "0x1"})
    with pytest.raises(TxtError, match="port"):
        parse_service(RAOP_SERVICE_TYPE, "001122334455@X", port=None, addresses=[],
                      properties={})  # fmt: skip
    with pytest.raises(TxtError, match="service type"):
        parse_service("_http._tcp.local.", "x", port=1, addresses=[], properties={})


def test_merge_refuses_two_devices_and_nothing() -> None:
    with pytest.raises(TxtError, match="different devices"):
        merge_records(
            raop("001122334455", "A", {}), airplay("B", {"deviceid": "66:55:44:33:22:11"})
        )
    with pytest.raises(TxtError):
        merge_records(None, None)


def test_bad_optional_fields_are_reported_not_fatal() -> None:
    record = raop("001122334455", "X", {"ft": "garbage", "sf": "0xQ"})
    device = merge_records(record, None)
    assert device.features == 0
    assert device.status_flags == 0
    assert len(device.problems) == 2
    assert "garbage" in device.problems[0]


@given(
    st.dictionaries(
        st.binary(max_size=12),
        st.one_of(st.none(), st.binary(max_size=40)),
        max_size=12,
    ),
    st.text(max_size=30),
)
def test_garbage_txt_only_raises_txt_error(
    properties: dict[bytes, bytes | None], name: str
) -> None:
    for service_type, service_name in (
        (RAOP_SERVICE_TYPE, f"001122334455@{name}"),
        (AIRPLAY_SERVICE_TYPE, name),
    ):
        try:
            record = parse_service(
                service_type, service_name, port=7000, addresses=["::1"], properties=properties
            )
        except TxtError:
            continue
        device = merge_records(record, None) if record.kind is ServiceKind.RAOP else None
        device = device or merge_records(None, record)
        assert device.player_id.startswith("ap")
        assert isinstance(device.features, int)


# --- own receiver ----------------------------------------------------------------------------


def test_own_shairport_is_recognised_only_on_its_port_and_host() -> None:
    own = merge_records(raop("D2D62975FB1A", "me", SHAIRPORT_CLASSIC_RAOP, 5101, "127.0.0.1"), None)
    assert is_own_receiver(own, own_ports=[5101])
    assert not is_own_receiver(own, own_ports=[5000])
    remote = merge_records(raop("D2D62975FB1A", "pi", SHAIRPORT_CLASSIC_RAOP, 5101), None)
    assert not is_own_receiver(remote, own_ports=[5101])
    assert is_own_receiver(remote, own_ports=[5101], own_addresses=["192.0.2.10"])
    homepod = merge_records(raop("F0B3EC123456", "H", HOMEPOD_RAOP, 5101, "127.0.0.1"), None)
    assert not is_own_receiver(homepod, own_ports=[5101])


@pytest.mark.parametrize("text", ["aabbccddeeff\n:", "AA:BB:CC:DD:EE:FF\n-"])
def test_mac_with_a_trailing_newline_is_refused(text: str) -> None:
    from airplay_provider.protocol.txt import normalize_mac  # noqa: PLC0415

    with pytest.raises(TxtError):
        normalize_mac(text)


@pytest.mark.parametrize(
    ("addresses", "networks", "expected"),
    [
        # seen on 10.1.0.0/16: its address there leads, the other link's next, IPv6 last
        (["192.0.2.5", "2001:db8::5", "10.1.2.3"], ["10.1.0.1/16"],
         ("10.1.2.3", "192.0.2.5", "2001:db8::5")),
        # an on-link IPv6 address beats an IPv4 address on another link
        (["192.0.2.5", "fd00::5"], ["fd00::2/64"], ("fd00::5", "192.0.2.5")),
        (["192.0.2.5", "2001:db8::5"], [], ("192.0.2.5", "2001:db8::5")),
        (["::1", "127.0.0.2", "127.0.0.1"], [], ("127.0.0.2", "127.0.0.1", "::1")),
        (["127.0.0.1", "192.0.2.5", "fe80::1"], ["127.0.0.1/8"], ("192.0.2.5",)),  # never ourselves
        (["192.0.2.5", "192.0.2.5"], ["not a network"], ("192.0.2.5",)),
    ],
)  # fmt: skip
def test_rank_addresses_puts_the_link_the_service_was_seen_on_first(
    addresses: list[str], networks: list[str], expected: tuple[str, ...]
) -> None:
    assert rank_addresses(addresses, networks) == expected
    assert choose_address(addresses, networks) == expected[0]


def test_merged_record_keeps_the_other_addresses_as_fallbacks() -> None:
    record = parse_service(
        RAOP_SERVICE_TYPE,
        f"AABBCCDDEEFF@Hall.{RAOP_SERVICE_TYPE}",
        port=5000,
        addresses=["192.0.2.5", "fd00::5", "10.1.2.3"],
        properties={"am": "AirPort10,115"},
    )
    device = merge_records(record, None, ["10.1.0.1/16"])
    assert device.address == "10.1.2.3"
    assert device.fallback_addresses == ("192.0.2.5", "fd00::5")
    assert merge_records(record, None).address == "192.0.2.5"
