"""TXT primitives: decoding, feature words, flags, AirPlay 2 bits, ids from a MAC, address
choice, the model table."""

from __future__ import annotations

import pytest

from airplay_provider.protocol.txt import (
    TxtError,
    active_remote_from_mac,
    choose_address,
    decode_txt,
    mac_from_player_id,
    model_info,
    parse_features,
    parse_flags,
    player_id_from_mac,
    supports_airplay2,
)

# --- primitives ------------------------------------------------------------------------------


def test_decode_txt_normalizes_keys_and_values() -> None:
    decoded = decode_txt({b"AM": b"AppleTV3,2", b"flag": None, b"bad": b"\xff\xfe", b"pw": b""})
    assert decoded == {"am": "AppleTV3,2", "flag": "", "bad": "\ufffd\ufffd", "pw": ""}


def test_parse_features_words() -> None:
    assert parse_features("0x4A7FCA00,0x3C356BD0") == 0x3C356BD04A7FCA00
    assert parse_features("0x5A7FFFF7") == 0x5A7FFFF7
    assert parse_features(" 0x1 , 0x2 ") == (2 << 32) | 1


@pytest.mark.parametrize("text", ["", "zz", "0x1,0x2,0x3", "0x100000000", "-0x1", "0x1,"])
def test_parse_features_refuses_garbage(text: str) -> None:
    with pytest.raises(TxtError):
        parse_features(text)


def test_parse_flags() -> None:
    assert parse_flags("0x1a404") == 0x1A404
    assert parse_flags("44") == 0x44
    with pytest.raises(TxtError):
        parse_flags("0xZZ")


def test_airplay2_detection_bits_38_and_48() -> None:
    assert supports_airplay2(1 << 38)
    assert supports_airplay2(1 << 48)
    assert not supports_airplay2((1 << 37) | (1 << 39) | (1 << 47) | (1 << 49) | 0xFFFFFFFF)


def test_ids_from_mac() -> None:
    assert player_id_from_mac("AA:BB:CC:DD:EE:FF") == "apaabbccddeeff"
    assert player_id_from_mac("aabbccddeeff") == "apaabbccddeeff"
    assert mac_from_player_id("apaabbccddeeff") == "AA:BB:CC:DD:EE:FF"
    assert active_remote_from_mac("AA:BB:CC:DD:EE:FF") == 0xCCDDEEFF == 3437096703
    with pytest.raises(TxtError):
        player_id_from_mac("AA:BB:CC:DD:EE")
    with pytest.raises(TxtError):
        mac_from_player_id("xxaabbccddeeff")


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        (["192.0.2.5"], "192.0.2.5"),
        (["127.0.0.1", "192.0.2.5"], "192.0.2.5"),
        (["169.254.3.4", "192.0.2.5"], "192.0.2.5"),
        (["fe80::1", "2001:db8::5", "192.0.2.5"], "192.0.2.5"),
        (["fe80::1", "2001:db8::5"], "2001:db8::5"),
        (["127.0.0.1"], "127.0.0.1"),
        (["::1", "127.0.0.2"], "127.0.0.2"),
        (["::1"], "::1"),
        (["::1", "2001:db8::5"], "2001:db8::5"),
        (["169.254.3.4"], None),
        (["fe80::1%eth0"], None),
        (["0.0.0.0", "not-an-ip"], None),
        ([], None),
    ],
)
def test_choose_address(addresses: list[str], expected: str | None) -> None:
    assert choose_address(addresses) == expected


@pytest.mark.parametrize(
    ("manufacturer", "model", "expected"),
    [
        (None, "AudioAccessory6,1", ("Apple", "HomePod 2")),
        (None, "AudioAccessorySingle5,1", ("Apple", "HomePod Mini")),
        (None, "AppleTV5,3", ("Apple", "Apple TV Gen4")),
        (None, "AppleTV14,1", ("Apple", "Apple TV 4K Gen3")),
        (None, "AppleTV99,9", ("Apple", "Apple TV")),
        (None, "AudioAccessory9,9", ("Apple", "HomePod")),
        (None, "AirPort4,107", ("Apple", "AirPort Express")),
        (None, "UPL-AMP", ("Ubiquiti Inc.", "UPL-AMP")),
        (None, "MacBookPro18,3", ("Apple", "MacBook Pro (MacBookPro18,3)")),
        (None, "Macmini9,1", ("Apple", "Mac mini (Macmini9,1)")),
        (None, "Mac14,3", ("Apple", "Mac (Mac14,3)")),
        (None, "ShairportSync", ("AirPlay", "ShairportSync")),
        ("Sonos", "Era 100", ("Sonos", "Era 100")),
        ("Denon", None, ("Denon", "Unknown")),
        (None, None, ("Unknown", "Unknown")),
    ],
)
def test_model_table(
    manufacturer: str | None, model: str | None, expected: tuple[str, str]
) -> None:
    assert model_info(manufacturer, model) == expected
