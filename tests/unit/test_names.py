"""The one name rule of `play --player`, `config NAME` and `pair NAME` (`host.names`)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from airplay_provider.host.names import ambiguous_message, is_exact, match_players


@dataclass(frozen=True)
class Player:
    name: str
    player_id: str
    mac: str


KITCHEN = Player("Kitchen", "apaabbccddee01", "AA:BB:CC:DD:EE:01")
KITCHENETTE = Player("Kitchenette", "apaabbccddee02", "AA:BB:CC:DD:EE:02")
DEN = Player("Den", "apaabbccddee03", "AA:BB:CC:DD:EE:03")
ALL = [KITCHEN, KITCHENETTE, DEN]


def find(text: str) -> list[Player]:
    return match_players(ALL, text, name=lambda p: p.name, ids=lambda p: (p.player_id, p.mac))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kitchen", [KITCHEN]),  # exact (any case) wins over the longer name containing it
        ("  KITCHENETTE ", [KITCHENETTE]),
        ("kitch", [KITCHEN, KITCHENETTE]),  # a part of two names: ambiguous
        ("nette", [KITCHENETTE]),  # a part of one name
        ("e", [KITCHEN, KITCHENETTE, DEN]),
        ("APAABBCCDDEE03", [DEN]),  # player id, any case
        ("aa:bb:cc:dd:ee:03", [DEN]),  # MAC
        ("aabbccddee03", []),  # a part of an id is not a name
        ("Office", []),
        ("", []),
    ],
)
def test_exact_first_then_a_part_of_a_name(text: str, expected: list[Player]) -> None:
    assert find(text) == expected


def test_is_exact_and_the_ambiguity_message_lists_every_candidate_sorted() -> None:
    assert is_exact("kitchen", KITCHEN.name, (KITCHEN.player_id,))
    assert not is_exact("kitch", KITCHEN.name, (KITCHEN.player_id,))
    message = ambiguous_message("kitch", [("Kitchenette", "ap2"), ("Kitchen", "ap1")])
    assert message == (
        "'kitch' is ambiguous: it matches Kitchen (ap1), Kitchenette (ap2). "
        "Give the full name or the player id."
    )
