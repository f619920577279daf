"""Random UDP packet loss on loopback with iptables (the statistic match; no netem here)."""

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
    iptables = shutil.which("iptables")
    if iptables is None:
        pytest.skip("iptables not installed (apt-get install iptables)")
    rule = _rule(port, last_port, probability)
    added = subprocess.run(
        [iptables, "-w", "5", "-A", *rule], capture_output=True, text=True, timeout=15, check=False
    )
    if added.returncode != 0:
        pytest.skip(f"iptables statistic match unavailable: {added.stderr.strip()}")
    try:
        yield rule
    finally:
        subprocess.run(
            [iptables, "-w", "5", "-D", *rule], capture_output=True, timeout=15, check=True
        )
