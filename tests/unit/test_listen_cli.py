"""`play --listen-port`: argument checks and the stream path (no sockets)."""

from __future__ import annotations

import argparse

import pytest

from airplay_provider.host.cmd_play_args import add_arguments
from airplay_provider.host.listen_cli import start_server, stream_path


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["song.flac", "--player", "Kitchen", *argv])


def test_listen_port_is_opt_in_and_checked() -> None:
    assert parse().listen_port is None
    assert parse("--listen-port", "8554").listen_port == 8554
    for bad in ("0", "65536", "x", "-1"):
        with pytest.raises(SystemExit):
            parse("--listen-port", bad)
    with pytest.raises(SystemExit):
        parse("--listen-port", "8554", "--listen-address", "not-an-address")


async def test_no_port_no_server() -> None:
    assert await start_server(parse()) is None


def test_the_path_comes_from_the_player_name() -> None:
    assert stream_path("Living Room") == "/living-room"
    assert stream_path("Küche & Bad!") == "/k-che-bad"
    assert stream_path("***") == "/session"
