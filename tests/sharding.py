"""pytest plugin: `--shard K/N` runs one of N disjoint parts of the suite, split by test file.

Most of the suite waits on real time (audio plays at its rate), so `scripts/test.sh` runs the
parts side by side, each in a network namespace of its own. Files are dealt out longest first
to the part with the least so far, by the seconds recorded in `shard_weights.json` (a file not
in it counts `UNKNOWN_FILE_S`), so the parts end close together. `--shard-record=PATH` writes
what this run measured per file into a table of that form (merged with what it holds).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

WEIGHTS = Path(__file__).with_name("shard_weights.json")
UNKNOWN_FILE_S = 3.0
_MEASURED: defaultdict[str, float] = defaultdict(float)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sharding")
    group.addoption("--shard", default=None, metavar="K/N", help="run part K of N (1-based)")
    group.addoption(
        "--shard-record", default=None, metavar="PATH", help="write per-file seconds to PATH"
    )


def parse_shard(text: str) -> tuple[int, int]:
    """`"K/N"` → (K, N); UsageError unless 1 <= K <= N."""
    try:
        part, parts = (int(value) for value in text.split("/"))
    except ValueError:
        raise pytest.UsageError(f"--shard wants K/N, got {text!r}") from None
    if not 1 <= part <= parts:
        raise pytest.UsageError(f"--shard {text}: K must be within 1..N")
    return part, parts


def deal(files: list[str], weights: dict[str, float], parts: int) -> list[list[str]]:
    """Files per part: longest first, each to the part with the fewest seconds so far (ties
    to the lower part; the order of `files` breaks ties among equal weights)."""
    loads = [0.0] * parts
    dealt: list[list[str]] = [[] for _ in range(parts)]
    ranked = sorted(files, key=lambda name: -weights.get(name, UNKNOWN_FILE_S))
    for name in ranked:
        lightest = loads.index(min(loads))
        loads[lightest] += weights.get(name, UNKNOWN_FILE_S)
        dealt[lightest].append(name)
    return dealt


def _file_of(item: pytest.Item, root: Path) -> str:
    return item.path.relative_to(root).as_posix()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    option = config.getoption("--shard")
    if option is None:
        return
    part, parts = parse_shard(option)
    weights: dict[str, float] = json.loads(WEIGHTS.read_text()) if WEIGHTS.exists() else {}
    root = config.rootpath
    files = list(dict.fromkeys(_file_of(item, root) for item in items))
    mine = set(deal(files, weights, parts)[part - 1])
    kept = [item for item in items if _file_of(item, root) in mine]
    others = [item for item in items if _file_of(item, root) not in mine]
    if others:
        config.hook.pytest_deselected(items=others)
    items[:] = kept


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _MEASURED[report.nodeid.split("::")[0]] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--shard-record")
    if path is None:
        return
    target = Path(path)
    table: dict[str, float] = json.loads(target.read_text()) if target.exists() else {}
    table.update({name: round(seconds, 1) for name, seconds in _MEASURED.items()})
    target.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n")
