"""TLV8 encoding of HAP pairing bodies (values over 255 bytes are fragmented)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum

from .errors import ProtocolViolation, TlvError, accessory_error

MAX_FRAGMENT = 255


class TlvType(IntEnum):
    """TLV item types used by HAP pair-setup and pair-verify."""

    METHOD = 0x00
    IDENTIFIER = 0x01
    SALT = 0x02
    PUBLIC_KEY = 0x03
    PROOF = 0x04
    ENCRYPTED_DATA = 0x05
    STATE = 0x06
    ERROR = 0x07
    RETRY_DELAY = 0x08
    CERTIFICATE = 0x09
    SIGNATURE = 0x0A
    PERMISSIONS = 0x0B
    FRAGMENT_DATA = 0x0C
    FRAGMENT_LAST = 0x0D
    NAME = 0x11
    FLAGS = 0x13
    SEPARATOR = 0xFF


TRANSIENT_FLAG = 0x10


def encode_tlv(items: Iterable[tuple[int, bytes]]) -> bytes:
    """Encode ``(type, value)`` pairs, splitting long values into 255-byte fragments."""
    out = bytearray()
    for item_type, value in items:
        if not 0 <= item_type <= 0xFF:
            raise ValueError(f"TLV type out of range: {item_type}")
        if not value:
            out += bytes((item_type, 0))
            continue
        for start in range(0, len(value), MAX_FRAGMENT):
            chunk = value[start : start + MAX_FRAGMENT]
            out += bytes((item_type, len(chunk)))
            out += chunk
    return bytes(out)


def decode_tlv_items(data: bytes) -> list[tuple[int, bytes]]:
    """Decode into ordered ``(type, value)`` pairs; consecutive same-type items are merged."""
    items: list[tuple[int, bytearray]] = []
    pos = 0
    previous_full = False
    while pos < len(data):
        if pos + 2 > len(data):
            raise TlvError(f"truncated TLV header at offset {pos}")
        item_type, length = data[pos], data[pos + 1]
        pos += 2
        if pos + length > len(data):
            raise TlvError(
                f"TLV type {item_type:#04x} claims {length} bytes, {len(data) - pos} left"
            )
        value = data[pos : pos + length]
        pos += length
        if items and previous_full and items[-1][0] == item_type:
            items[-1][1].extend(value)
        else:
            items.append((item_type, bytearray(value)))
        previous_full = length == MAX_FRAGMENT
    return [(item_type, bytes(value)) for item_type, value in items]


def decode_tlv(data: bytes) -> dict[int, bytes]:
    """Decode a body into a mapping; a type that appears twice is a protocol error."""
    result: dict[int, bytes] = {}
    for item_type, value in decode_tlv_items(data):
        if item_type in result:
            raise TlvError(f"duplicate TLV type {item_type:#04x}")
        result[item_type] = value
    return result


def encode_int(value: int) -> bytes:
    """Encode a TLV integer: little-endian, as few bytes as possible (at least one)."""
    if value < 0:
        raise ValueError("TLV integers are unsigned")
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "little")


def decode_int(value: bytes) -> int:
    """Decode a little-endian TLV integer (1 to 8 bytes)."""
    if not 1 <= len(value) <= 8:
        raise TlvError(f"bad TLV integer length {len(value)}")
    return int.from_bytes(value, "little")


def raise_on_error(tlv: Mapping[int, bytes]) -> None:
    """Raise the typed accessory error when the body holds an Error TLV."""
    error = tlv.get(TlvType.ERROR)
    if error is None:
        return
    retry = tlv.get(TlvType.RETRY_DELAY)
    raise accessory_error(decode_int(error), decode_int(retry) if retry else None)


def require(tlv: Mapping[int, bytes], item_type: TlvType, length: int | None = None) -> bytes:
    """Return a mandatory item, checking its length when one is given."""
    value = tlv.get(item_type)
    if value is None:
        raise ProtocolViolation(f"missing TLV {item_type.name}")
    if length is not None and len(value) != length:
        raise ProtocolViolation(f"TLV {item_type.name} has {len(value)} bytes, expected {length}")
    return value


def expect_state(tlv: Mapping[int, bytes], state: int) -> None:
    """Check the Error TLV first, then that the State TLV equals ``state``."""
    raise_on_error(tlv)
    got = decode_int(require(tlv, TlvType.STATE))
    if got != state:
        raise ProtocolViolation(f"expected state M{state}, got M{got}")
