"""Credentials strings: layout, validation, round trips."""

from __future__ import annotations

import pytest

from airplay_provider.protocol.hap.credentials import (
    HapCredentials,
    LegacyCredentials,
    check_identifier,
)
from airplay_provider.protocol.hap.errors import InvalidCredentials

# RFC 8032 section 7.1, test 1: Ed25519 seed and its public key.
SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
ACCESSORY = bytes(range(32))


def test_serialised_layout_is_seed_public_accessory() -> None:
    text = HapCredentials(seed=SEED, accessory_ltpk=ACCESSORY).serialize()
    assert text == SEED.hex() + PUBLIC + ACCESSORY.hex()
    assert len(text) == 192


def test_parse_round_trip_accepts_upper_case() -> None:
    text = (SEED.hex() + PUBLIC + ACCESSORY.hex()).upper()
    credentials = HapCredentials.parse(text)
    assert credentials.seed == SEED
    assert credentials.accessory_ltpk == ACCESSORY
    assert credentials.public_key.hex() == PUBLIC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "00" * 95,
        "00" * 97,
        "zz" + "00" * 95,
        SEED.hex() + "00" * 32 + ACCESSORY.hex(),  # public key not derived from the seed
    ],
)
def test_bad_strings_raise_invalid_credentials(text: str) -> None:
    with pytest.raises(InvalidCredentials):
        HapCredentials.parse(text)


def test_field_lengths_are_checked() -> None:
    with pytest.raises(InvalidCredentials):
        HapCredentials(seed=b"short", accessory_ltpk=ACCESSORY)


def test_identifier_is_sixteen_upper_hex() -> None:
    assert check_identifier("0123456789ABCDEF") == "0123456789ABCDEF"
    for bad in ("0123456789abcdef", "0123", "0123456789ABCDEG"):
        with pytest.raises(InvalidCredentials):
            check_identifier(bad)


def test_legacy_credentials_round_trip() -> None:
    credentials = LegacyCredentials(client_id=bytes.fromhex("0011223344aabbcc"), secret=SEED)
    text = credentials.serialize()
    assert text == "0011223344AABBCC:" + SEED.hex()
    assert credentials.user == "0011223344AABBCC"
    assert LegacyCredentials.parse(text) == credentials
    for bad in ("0011223344AABBCC" + SEED.hex(), "00:" + SEED.hex(), "0011223344AABBCC:00"):
        with pytest.raises(InvalidCredentials):
            LegacyCredentials.parse(bad)
