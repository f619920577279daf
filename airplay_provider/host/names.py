"""The one rule by which `play --player`, `config NAME` and `pair NAME` find a player.

A text names a player when it equals the player's id, MAC or name (case-insensitive); failing
any such exact match, when it is part of exactly one player's name ("kitch" → "Kitchen").
More than one match is an error that lists the candidates, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final, TypeVar

from airplay_provider.protocol.txt import DeviceRecord

T = TypeVar("T")

#: A name that is only part of a receiver's name is accepted once discovery has run this long
#: (every receiver on the link answers the first query by then), so a second, longer match
#: found a moment later makes it ambiguous instead of losing the race.
SUBSTRING_SETTLE_S: Final = 1.5


def match_players(
    items: Iterable[T],
    text: str,
    *,
    name: Callable[[T], str],
    ids: Callable[[T], Iterable[str]],
) -> list[T]:
    """The items `text` names: the exact matches if any, else the name substring matches."""
    wanted = text.strip().lower()
    if not wanted:
        return []
    pool = list(items)
    exact = [
        item
        for item in pool
        if wanted == name(item).lower() or wanted in (key.lower() for key in ids(item))
    ]
    if exact:
        return exact
    return [item for item in pool if wanted in name(item).lower()]


def is_exact(text: str, name: str, ids: Iterable[str]) -> bool:
    """Whether `text` names this player exactly (not by a part of its name)."""
    wanted = text.strip().lower()
    return wanted == name.lower() or wanted in (key.lower() for key in ids)


def ambiguous_message(text: str, candidates: Sequence[tuple[str, str]]) -> str:
    """`'kit' matches Kitchen (ap…), Kitchenette (ap…): give the full name or the player id`."""
    listed = ", ".join(f"{name} ({player_id})" for name, player_id in sorted(candidates))
    return f"{text!r} is ambiguous: it matches {listed}. Give the full name or the player id."


def device_name(device: DeviceRecord) -> str:
    """A discovered device's name, for `match_players`."""
    return device.name


def device_ids(device: DeviceRecord) -> tuple[str, ...]:
    """What names a discovered device exactly besides its name: its player id and MAC."""
    return (device.player_id, device.mac)
