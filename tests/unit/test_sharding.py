"""The suite's split into parts (tests/sharding.py): disjoint, complete, balanced, checked."""

from __future__ import annotations

import pytest

from tests.sharding import UNKNOWN_FILE_S, deal, parse_shard


def test_every_file_goes_to_exactly_one_part() -> None:
    files = [f"tests/f{index}.py" for index in range(40)]
    weights = {name: float(index % 7) + 0.5 for index, name in enumerate(files)}
    parts = deal(files, weights, 3)
    dealt = [name for part in parts for name in part]
    assert sorted(dealt) == sorted(files)
    assert len(dealt) == len(set(dealt))


def test_parts_end_close_together() -> None:
    weights = {"a": 50.0, "b": 40.0, "c": 30.0, "d": 20.0, "e": 10.0, "f": 10.0}
    parts = deal(list(weights), weights, 2)
    loads = [sum(weights[name] for name in part) for part in parts]
    assert abs(loads[0] - loads[1]) <= 10.0  # longest first: 80 / 80 here
    assert loads == [80.0, 80.0]


def test_files_without_a_recorded_time_count_the_default() -> None:
    parts = deal(["new_a.py", "new_b.py", "known.py"], {"known.py": 2 * UNKNOWN_FILE_S}, 2)
    assert parts == [["known.py"], ["new_a.py", "new_b.py"]]


def test_equal_files_spread_evenly() -> None:
    files = [f"t{index}.py" for index in range(25)]
    parts = deal(files, dict.fromkeys(files, 1.0), 4)
    assert sorted(len(part) for part in parts) == [6, 6, 6, 7]


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/2/3"])
def test_a_malformed_part_is_a_usage_error(text: str) -> None:
    with pytest.raises(pytest.UsageError):
        parse_shard(text)


def test_a_part_parses() -> None:
    assert parse_shard("2/3") == (2, 3)
