"""Shared test configuration: fixture modules are registered as plugins here, and the groups the
suite's two workers share out (scripts/test.sh runs `pytest -n 2 --dist loadgroup`)."""

import pytest

pytest_plugins = ["tests.receivers.shairport"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test file is one group (its tests run in order, in one worker), except the network
    namespace files: they all form one group. Each of them runs a PTP grandmaster, a sender and
    emulated receivers in real time; two at once on 2 cores starve each other's timing."""
    for item in items:
        group = "netns" if item.get_closest_marker("netns") else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))
