"""The sender's DACP identity: the persisted DACP id, its file, Active-Remote tokens."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from airplay_provider.identity import (
    IdentityError,
    active_remote_for,
    is_valid_dacp_id,
    load_or_create_dacp_id,
    new_active_remote,
    new_dacp_id,
)
from airplay_provider.protocol.dacp import parse_active_remote

# -- identity ------------------------------------------------------------------------------


def test_dacp_id_created_once_and_persisted(tmp_path: Path) -> None:
    state_file = tmp_path / "sub" / "identity.json"
    first = load_or_create_dacp_id(state_file)
    assert is_valid_dacp_id(first)
    assert load_or_create_dacp_id(state_file) == first
    assert json.loads(state_file.read_text())["dacp_id"] == first
    assert [p.name for p in state_file.parent.iterdir()] == ["identity.json"]


def test_identity_directory_is_private(tmp_path: Path) -> None:
    state_file = tmp_path / "config" / "identity.json"
    load_or_create_dacp_id(state_file)
    assert state_file.parent.stat().st_mode & 0o777 == 0o700


def test_dacp_id_keeps_other_keys(tmp_path: Path) -> None:
    state_file = tmp_path / "identity.json"
    state_file.write_text(json.dumps({"pairing": {"x": 1}}))
    dacp_id = load_or_create_dacp_id(state_file)
    assert json.loads(state_file.read_text()) == {"pairing": {"x": 1}, "dacp_id": dacp_id}


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[1, 2]", b'{"dacp_id": "abc"}', b'{"dacp_id": 5}', b"\xff\xfe", b""],
)
def test_bad_identity_file_is_a_typed_error(tmp_path: Path, content: bytes) -> None:
    state_file = tmp_path / "identity.json"
    state_file.write_bytes(content)
    with pytest.raises(IdentityError):
        load_or_create_dacp_id(state_file)
    assert state_file.read_bytes() == content


def test_valid_dacp_ids() -> None:
    assert is_valid_dacp_id("0123456789ABCDEF")
    assert not is_valid_dacp_id("0123456789abcdef")
    assert not is_valid_dacp_id("0123456789ABCDE")
    assert not is_valid_dacp_id("0123456789ABCDEF0")


@pytest.mark.parametrize(
    ("player_id", "token"),
    [
        ("aa:bb:cc:dd:ee:ff", str(0xCCDDEEFF)),
        ("AABBCCDDEEFF", str(0xCCDDEEFF)),
        ("ap001122334455", str(0x22334455)),
        ("ap00:11:22:33:44:55", str(0x22334455)),
        ("00:00:00:00:00:00", "1"),
    ],
)
def test_active_remote_from_mac(player_id: str, token: str) -> None:
    assert active_remote_for(player_id) == token


def test_active_remote_for_non_mac_ids_is_stable_and_decimal() -> None:
    token = active_remote_for("living-room speaker")
    assert token == active_remote_for("living-room speaker")
    assert token != active_remote_for("kitchen speaker")
    assert re.fullmatch(r"[1-9]\d{0,9}", token)
    assert int(token) <= 0xFFFFFFFF


def test_new_active_remote_is_random_32_bit_decimal() -> None:
    tokens = {new_active_remote() for _ in range(200)}
    assert len(tokens) > 190
    for token in tokens:
        assert parse_active_remote(token) == token
        assert 1 <= int(token) <= 0xFFFFFFFF


def test_new_dacp_ids_never_start_with_zero() -> None:
    # shairport-sync 3.3.8 strips leading zeros from iTunes_Ctrl_<id> before matching DACP-ID.
    ids = [new_dacp_id() for _ in range(2000)]
    assert all(is_valid_dacp_id(value) for value in ids)
    assert not any(value.startswith("0") for value in ids)
    assert len({value[0] for value in ids}) == 15  # every other leading digit does occur
