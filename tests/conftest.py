"""Shared test configuration: fixture modules are registered as plugins here, and the groups the
suite's two workers share out (scripts/test.sh runs `pytest -n 2 --dist loadgroup`)."""

import functools
import re
from pathlib import Path

import pytest

pytest_plugins = ["tests.receivers.shairport"]

#: What a test file touches that every process on the machine shares: the loopback's mDNS
#: (zeroconf, avahi, the demo/lab receivers, our DACP service), iptables rules on `lo`, real
#: shairport-sync receivers. Files naming any of these run one after another.
_SHARES_LOOPBACK = re.compile(
    r"iptables|zeroconf|Zeroconf|publisher|receiver_lab|start_shairport|mark\.receiver|avahi"
    r"|\"demo\"|\"lab\"|--interface|\"discover\"|run_cli|browse=True|DacpServer|remote_control"
)


@functools.cache
def _group_of(path: Path) -> str:
    if _SHARES_LOOPBACK.search(path.read_text(encoding="utf-8")):
        return "loopback"
    return str(path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for `--dist loadgroup`: the network namespace files form one group (each runs a
    PTP grandmaster, a sender and emulated receivers in real time: two at once on 2 cores starve
    each other's timing), the files that share the loopback another; every other file is a
    group of its own (its tests run in order, in one worker)."""
    for item in items:
        group = "netns" if item.get_closest_marker("netns") else _group_of(item.path)
        item.add_marker(pytest.mark.xdist_group(group))
