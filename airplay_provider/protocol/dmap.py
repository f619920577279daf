"""DMAP tagged items for RAOP text metadata (docs/protocol.md A.8): tag, 4-byte length, value."""

from __future__ import annotations

import struct

from airplay_provider.protocol.errors import AirplayError

_ITEM_HEADER = struct.Struct(">4sI")
ITEM_KIND_SONG = 2


class DmapError(AirplayError, ValueError):
    """An invalid tag or value, or truncated DMAP data."""


def _tag_bytes(tag: str) -> bytes:
    try:
        raw = tag.encode("ascii")
    except UnicodeEncodeError as err:
        raise DmapError(f"DMAP tag must be ASCII: {tag!r}") from err
    if len(raw) != 4:
        raise DmapError(f"DMAP tag must be 4 characters: {tag!r}")
    return raw


def dmap_item(tag: str, value: bytes | str | int, *, int_size: int = 1) -> bytes:
    """One item: strings as UTF-8, ints as unsigned big-endian of ``int_size`` bytes."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        if int_size not in (1, 2, 4, 8):
            raise DmapError(f"unsupported int_size {int_size}")
        if not 0 <= value < 1 << (8 * int_size):
            raise DmapError(f"{value} does not fit in {int_size} unsigned bytes")
        data = value.to_bytes(int_size, "big")
    elif isinstance(value, str):
        data = value.encode("utf-8")
    else:
        data = bytes(value)
    if len(data) > 0xFFFFFFFF:
        raise DmapError("DMAP value too long")
    return _ITEM_HEADER.pack(_tag_bytes(tag), len(data)) + data


def track_metadata(*, title: str | None, artist: str | None, album: str | None) -> bytes:
    """``mlit`` container: mikd=2, then minm (title), asar (artist), asal (album) if given."""
    items = [dmap_item("mikd", ITEM_KIND_SONG)]
    for tag, text in (("minm", title), ("asar", artist), ("asal", album)):
        if text is not None:
            items.append(dmap_item(tag, text))
    return dmap_item("mlit", b"".join(items))


def parse_dmap(data: bytes) -> list[tuple[str, bytes]]:
    """Split one level of DMAP items into (tag, value); DmapError on truncation."""
    items: list[tuple[str, bytes]] = []
    position = 0
    while position < len(data):
        if len(data) - position < _ITEM_HEADER.size:
            raise DmapError(f"truncated DMAP item header at offset {position}")
        raw_tag, length = _ITEM_HEADER.unpack_from(data, position)
        position += _ITEM_HEADER.size
        if len(data) - position < length:
            raise DmapError(f"DMAP item {raw_tag!r} claims {length} bytes, has fewer")
        items.append((raw_tag.decode("latin-1"), bytes(data[position : position + length])))
        position += length
    return items
