"""UDP packet loss on loopback with iptables (the statistic match; no netem here): random, or
exactly chosen datagrams of a flow."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def _rule(port: int, last_port: int | None, probability: float) -> list[str]:
    dport = str(port) if last_port is None else f"{port}:{last_port}"
    return [
        "INPUT", "-i", "lo", "-p", "udp", "--dport", dport,
        "-m", "statistic", "--mode", "random", "--probability", f"{probability:.6g}",
        "-j", "DROP",
    ]  # fmt: skip


def _nth_rule(port: int, index: int) -> list[str]:
    return [
        "INPUT", "-i", "lo", "-p", "udp", "--dport", str(port),
        "-m", "statistic", "--mode", "nth", "--every", "1000000", "--packet", str(index),
        "-j", "DROP",
    ]  # fmt: skip


@contextmanager
def _rules(rules: list[list[str]]) -> Iterator[None]:
    """Append `rules` to INPUT, delete them on exit; skip the test if iptables can't."""
    iptables = shutil.which("iptables")
    if iptables is None:
        pytest.skip("iptables not installed (apt-get install iptables)")
    added: list[list[str]] = []
    try:
        for rule in rules:
            done = subprocess.run(
                [iptables, "-w", "5", "-A", *rule],
                capture_output=True,
                text=True,
                timeout=15,
                check=False,
            )
            if done.returncode != 0:
                pytest.skip(f"iptables statistic match unavailable: {done.stderr.strip()}")
            added.append(rule)
        yield
    finally:
        for rule in reversed(added):
            subprocess.run(
                [iptables, "-w", "5", "-D", *rule], capture_output=True, timeout=15, check=True
            )


@contextmanager
def drop_udp_datagrams(port: int, first: int, count: int) -> Iterator[None]:
    """Drop datagrams number `first` .. `first + count - 1` (from 0, counted from now) arriving
    on lo for `port`, and no others.

    One `nth` rule per datagram, each counting only what the rules before it let through: every
    rule drops the `first`-th datagram it sees.
    """
    if first < 0 or not 0 < count <= 16:
        raise ValueError(f"bad datagram range: first={first} count={count}")
    with _rules([_nth_rule(port, first) for _ in range(count)]):
        yield


@contextmanager
def drop_udp_packets(
    port: int, probability: float, *, last_port: int | None = None
) -> Iterator[list[str]]:
    """Drop a random ``probability`` share of UDP datagrams arriving on lo for ``port``.

    ``last_port`` makes it a port range. Drops on INPUT (an OUTPUT drop would make the
    sender's ``sendto()`` fail with EPERM). The rule is always deleted on exit. Yields the
    rule's arguments. Skips the test when iptables or its statistic match is unavailable.
    """
    if not 0.0 < probability <= 1.0:
        raise ValueError(f"probability must be in (0, 1], not {probability}")
    rule = _rule(port, last_port, probability)
    with _rules([rule]):
        yield rule
