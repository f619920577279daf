"""DMAP items and the mlit metadata container, byte-exact."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airplay_provider.protocol.dmap import DmapError, dmap_item, parse_dmap, track_metadata


def test_full_mlit_container_exact() -> None:
    expected = bytes.fromhex(
        "6d6c6974 0000002a"  # 'mlit', 42 bytes
        "6d696b64 00000001 02"  # 'mikd' = 2
        "6d696e6d 00000004 536f6e67"  # 'minm' = "Song"
        "61736172 00000003 417274"  # 'asar' = "Art"
        "6173616c 00000002 416c"  # 'asal' = "Al"
    )
    assert track_metadata(title="Song", artist="Art", album="Al") == expected


def test_mlit_omits_missing_fields_and_encodes_utf8() -> None:
    data = track_metadata(title="Café", artist=None, album="")
    assert data == bytes.fromhex(
        "6d6c6974 0000001e 6d696b64 00000001 02 6d696e6d 00000005 436166c3a9 6173616c 00000000"
    )
    [(tag, inner)] = parse_dmap(data)
    assert tag == "mlit"
    assert parse_dmap(inner) == [("mikd", b"\x02"), ("minm", "Café".encode()), ("asal", b"")]


def test_dmap_item_int_sizes() -> None:
    assert dmap_item("mikd", 2) == bytes.fromhex("6d696b64 00000001 02")
    assert dmap_item("astm", 215000, int_size=4) == bytes.fromhex("6173746d 00000004 000347d8")
    assert dmap_item("abcd", True, int_size=2) == bytes.fromhex("61626364 00000002 0001")
    assert dmap_item("abcd", b"\x00\xff") == bytes.fromhex("61626364 00000002 00ff")


@pytest.mark.parametrize(
    ("tag", "value", "int_size"),
    [
        ("abc", 1, 1),
        ("abcde", 1, 1),
        ("abcé", 1, 1),
        ("abcd", 256, 1),
        ("abcd", -1, 1),
        ("abcd", 1, 3),
    ],
)
def test_dmap_item_rejects(tag: str, value: int, int_size: int) -> None:
    with pytest.raises(DmapError):
        dmap_item(tag, value, int_size=int_size)


@pytest.mark.parametrize(
    "data",
    [b"mli", b"mlit\x00\x00\x00", b"mlit\x00\x00\x00\x05abcd", b"mikd\x00\x00\x00\x01\x02mi"],
)
def test_parse_rejects_truncation(data: bytes) -> None:
    with pytest.raises(DmapError):
        parse_dmap(data)
    assert issubclass(DmapError, ValueError)


def test_parse_empty() -> None:
    assert parse_dmap(b"") == []


@given(st.lists(st.tuples(st.from_regex(r"[a-z]{4}", fullmatch=True), st.binary(max_size=50))))
def test_round_trip(items: list[tuple[str, bytes]]) -> None:
    data = b"".join(dmap_item(tag, value) for tag, value in items)
    assert parse_dmap(data) == items
