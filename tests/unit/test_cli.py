"""The `airplay-provider` command line itself: version, verbosity, interface checks."""

from __future__ import annotations

import argparse
import logging

import pytest

from airplay_provider.host import cli


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out == f"airplay-provider {cli.package_version()}"
    assert out.split()[-1][0].isdigit()


@pytest.mark.parametrize("command", ["discover", "config", "pair"])
def test_an_address_of_another_host_is_a_clear_usage_error(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [command, "--interface", "10.9.9.9"]
    if command != "discover":
        argv.insert(1, "Kitchen")
    with pytest.raises(SystemExit) as done:
        cli.main(argv)
    assert done.value.code == 2
    assert "10.9.9.9 is not an address of this host" in capsys.readouterr().err


def test_own_addresses_and_garbage() -> None:
    assert cli.interface_address("127.0.0.1") == "127.0.0.1"
    assert cli.interface_address("::1") == "::1"
    with pytest.raises(argparse.ArgumentTypeError, match="not an IP address"):
        cli.interface_address("eth0")


@pytest.mark.parametrize(
    ("count", "level"), [(0, logging.WARNING), (1, logging.INFO), (3, logging.DEBUG)]
)
def test_verbosity_sets_the_package_log_level(count: int, level: int) -> None:
    cli.configure_logging(count)
    assert logging.getLogger("airplay_provider").level == level
