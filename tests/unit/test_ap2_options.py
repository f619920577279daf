"""`cliap2` command line: Music Assistant's argument list, strict validation."""

from __future__ import annotations

import os

import pytest

from airplay_provider.protocol.hap.credentials import HapCredentials
from airplay_provider.streamer.airplay2_options import parse_options, parse_txt
from airplay_provider.streamer.raop_options import UsageError

BASE = ["--name", "Kitchen", "--hostname", "k.local", "--address", "10.0.0.5", "--port", "7000"]
BASE += ["--txt", '"deviceid=AA:BB" "features=0x445F8A00,0x1C340" ', "--pipe", "-"]


def test_music_assistant_arguments() -> None:
    credentials = HapCredentials(seed=os.urandom(32), accessory_ltpk=os.urandom(32))
    options = parse_options(
        [*BASE, "--ntpstart", "123", "--volume", "30", "--loglevel", "12", "--dacp_id",
         "00112233aabbccdd", "--command_pipe", "/tmp/x", "--latency", "500", "--auth",
         credentials.serialize()]
    )  # fmt: skip
    common = options.common
    assert (common.host, common.port, common.ntpstart, common.volume) == ("10.0.0.5", 7000, 123, 30)
    assert (common.debug, common.cmdpipe, common.latency_ms) == (9, "/tmp/x", 500)
    assert options.pairing_id == "00112233AABBCCDD"
    assert options.credentials == credentials
    assert options.txt == {"deviceid": "AA:BB", "features": "0x445F8A00,0x1C340"}
    assert options.timing == "auto"
    assert not common.alac  # uncompressed ALAC frames unless --alac (the encoder costs CPU)


@pytest.mark.parametrize(
    ("extra", "alac"),
    [([], False), (["--alac"], True), (["--alac", "on"], True), (["--alac", "off"], False)],
)
def test_alac_off_by_default_and_can_be_turned_on(extra: list[str], alac: bool) -> None:
    assert parse_options([*BASE, *extra]).common.alac is alac


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--port", "0"], "--port"),
        (["--volume", "101"], "--volume"),
        (["--latency", "5"], "--latency"),
        (["--ntpstart", "0"], "--ntpstart"),
        (["--auth", "abcd"], "--auth"),
        (["--dacp_id", "XYZ"], "--dacp_id"),
        (["--timing", "gps"], "timing"),
        (["--alac", "yes"], "--alac"),
    ],
)
def test_bad_arguments_are_usage_errors(extra: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_options([*BASE, *extra])


def test_pipe_must_be_stdin_and_required_arguments_exist() -> None:
    with pytest.raises(UsageError, match="stdin"):
        parse_options([*BASE[:-2], "--pipe", "/tmp/file"])
    with pytest.raises(UsageError, match="required"):
        parse_options(["--name", "x"])


@pytest.mark.parametrize("text", ["deviceid=AA", '"a=b=c"', '"=x"', '"unterminated'])
def test_txt_items_must_be_quoted_single_pairs(text: str) -> None:
    with pytest.raises(UsageError, match="--txt"):
        parse_txt(text)
