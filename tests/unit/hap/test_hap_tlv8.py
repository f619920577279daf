"""TLV8 codec: fixed byte vectors, fragmentation, error TLVs, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airplay_provider.protocol.hap.errors import (
    AuthenticationError,
    BackoffError,
    BusyError,
    MaxPeersError,
    MaxTriesError,
    ProtocolViolation,
    TlvError,
    UnavailableError,
    UnknownAccessoryError,
)
from airplay_provider.protocol.hap.tlv8 import (
    TlvType,
    decode_int,
    decode_tlv,
    decode_tlv_items,
    encode_int,
    encode_tlv,
    expect_state,
    raise_on_error,
    require,
)


def test_transient_m1_bytes() -> None:
    body = encode_tlv(
        [(TlvType.STATE, b"\x01"), (TlvType.METHOD, b"\x00"), (TlvType.FLAGS, b"\x10")]
    )
    assert body == bytes.fromhex("060101 000100 130110")


def test_empty_value_is_type_and_zero_length() -> None:
    assert encode_tlv([(TlvType.SEPARATOR, b"")]) == b"\xff\x00"
    assert decode_tlv(b"\xff\x00") == {0xFF: b""}


def test_384_byte_public_key_splits_255_plus_129() -> None:
    value = bytes(range(256)) + bytes(128)
    body = encode_tlv([(TlvType.PUBLIC_KEY, value)])
    assert body[:2] == b"\x03\xff"
    assert body[2:257] == value[:255]
    assert body[257:259] == b"\x03\x81"
    assert body[259:] == value[255:]
    assert len(body) == 384 + 4
    assert decode_tlv(body) == {3: value}


def test_exact_multiple_of_255_has_no_empty_trailer() -> None:
    body = encode_tlv([(5, b"\xaa" * 510), (6, b"\x02")])
    assert body == b"\x05\xff" + b"\xaa" * 255 + b"\x05\xff" + b"\xaa" * 255 + b"\x06\x01\x02"
    assert decode_tlv(body) == {5: b"\xaa" * 510, 6: b"\x02"}


def test_fragments_merge_only_after_full_fragment() -> None:
    assert decode_tlv_items(b"\x01\x01a\x01\x01b") == [(1, b"a"), (1, b"b")]
    with pytest.raises(TlvError, match="duplicate"):
        decode_tlv(b"\x01\x01a\x01\x01b")
    with pytest.raises(TlvError, match="duplicate"):
        decode_tlv(b"\x01\x01a\x02\x00\x01\x01b")


@pytest.mark.parametrize("data", [b"\x06", b"\x06\x02\x01", b"\x03\xff" + bytes(10)])
def test_truncated_bodies_raise_tlv_error(data: bytes) -> None:
    with pytest.raises(TlvError):
        decode_tlv(data)


def test_integers_are_little_endian() -> None:
    assert encode_int(0) == b"\x00"
    assert encode_int(0x10) == b"\x10"
    assert encode_int(300) == b"\x2c\x01"
    assert decode_int(b"\x2c\x01") == 300
    with pytest.raises(TlvError):
        decode_int(b"")
    with pytest.raises(ValueError):
        encode_int(-1)


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (1, UnknownAccessoryError),
        (2, AuthenticationError),
        (4, MaxPeersError),
        (5, MaxTriesError),
        (6, UnavailableError),
        (7, BusyError),
        (42, UnknownAccessoryError),
    ],
)
def test_error_tlv_maps_to_typed_error(code: int, error_type: type[Exception]) -> None:
    with pytest.raises(error_type):
        raise_on_error(decode_tlv(bytes([6, 1, 2, 7, 1, code])))


def test_backoff_error_carries_retry_delay() -> None:
    with pytest.raises(BackoffError) as info:
        raise_on_error(decode_tlv(bytes.fromhex("060102 070103 08021e00")))
    assert info.value.retry_delay == 30


def test_error_wins_over_expected_state() -> None:
    with pytest.raises(AuthenticationError):
        expect_state(decode_tlv(bytes.fromhex("060104 070102")), 4)


def test_wrong_state_and_missing_items_are_protocol_violations() -> None:
    with pytest.raises(ProtocolViolation, match="expected state M2, got M4"):
        expect_state({6: b"\x04"}, 2)
    with pytest.raises(ProtocolViolation, match="missing TLV STATE"):
        expect_state({}, 2)
    with pytest.raises(ProtocolViolation, match="has 3 bytes, expected 16"):
        require({2: b"abc"}, TlvType.SALT, 16)


items = st.dictionaries(st.integers(0, 255), st.binary(max_size=700), max_size=6)


@given(items)
def test_roundtrip(values: dict[int, bytes]) -> None:
    assert decode_tlv(encode_tlv(values.items())) == values


@given(st.binary(max_size=600))
def test_decoding_garbage_raises_only_tlv_error(data: bytes) -> None:
    try:
        decoded = decode_tlv(data)
    except TlvError:
        return
    assert all(isinstance(value, bytes) for value in decoded.values())
