"""Streamer building blocks that need no network: options, status lines, FIFO commands."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airplay_provider.protocol.streamer_status import UnknownStatus, format_status
from airplay_provider.protocol.streamer_status import parse_status_fields as parse_status
from airplay_provider.streamer.commands import CommandFifo, LineSplitter, parse_command
from airplay_provider.streamer.pcm_input import PcmInput
from airplay_provider.streamer.raop_options import UsageError, parse_options

MA_ARGS = [
    "-ntpstart", "16725520800000000000", "-port", "7000", "-latency", "2000", "-volume", "35",
    "-if", "127.0.0.1", "-encrypt", "-alac", "-et", "0,1", "-md", "0,1,2", "-am", "AirPort10,115",
    "-pk", "abcd", "-pw", "false", "-dacp", "0123456789ABCDEF", "-activeremote", "12345",
    "-cmdpipe", "/tmp/x-cmd", "-udn", "AABBCCDDEEFF@Kitchen", "192.168.1.20", "-",
]  # fmt: skip


def test_music_assistant_argument_list_parses() -> None:
    opts = parse_options(MA_ARGS)
    assert opts.host == "192.168.1.20"
    assert opts.port == 7000
    assert opts.ntpstart == 16725520800000000000
    assert opts.latency_ms == 2000
    assert opts.volume == 35
    assert opts.use_encryption
    assert opts.metadata_types == frozenset({0, 1, 2})
    assert opts.password_required is False
    assert opts.active_remote == "12345"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-port", "0", "h"], "-port"),
        (["-volume", "101", "h"], "-volume"),
        (["-latency", "5", "h"], "-latency"),
        (["-bogus", "h"], "unrecognized"),
        (["h", "/some/file"], "stdin"),
        ([], "host"),
    ],
)
def test_bad_arguments_give_clear_errors(args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_options(args)


def test_encryption_needs_type_1() -> None:
    assert not parse_options(["-encrypt", "-et", "0,3", "h"]).use_encryption
    assert not parse_options(["-et", "0,1", "h"]).use_encryption


@given(
    st.dictionaries(
        st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
        st.one_of(st.integers(), st.text(max_size=20), st.booleans()),
        max_size=5,
    )
)
def test_status_lines_round_trip(fields: dict[str, object]) -> None:
    expected = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()}
    line = format_status(UnknownStatus("future_event", expected))
    assert "\n" not in line
    parsed = parse_status(line)
    assert parsed is not None
    event, values = parsed
    assert event == "future_event"
    assert values == expected


def test_non_status_lines_are_ignored() -> None:
    assert parse_status("12:00:00 cliraop: connected to x") is None
    assert parse_status('[STATUS] error code=timeout message="no answer in 5 s"') == (
        "error",
        {"code": "timeout", "message": "no answer in 5 s"},
    )


def test_command_parsing() -> None:
    assert parse_command("VOLUME=50") == ("VOLUME", "50")
    assert parse_command("title=A=B") == ("TITLE", "A=B")
    assert parse_command("  ") is None
    assert parse_command("no equals") is None
    assert parse_command("=x") is None


def test_line_splitter_handles_splits_and_overlong_lines() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"VOL") == []
    assert splitter.feed(b"UME=5\nACTION=PA") == ["VOLUME=5"]
    assert splitter.feed(b"USE\n") == ["ACTION=PAUSE"]
    assert splitter.feed(b"x" * 70000) == []
    assert splitter.feed(b"tail\nOK=1\n") == ["OK=1"]  # the over-long line is dropped whole


async def test_fifo_delivers_commands_and_is_removed(tmp_path: Path) -> None:
    received: list[tuple[str, str]] = []
    got = asyncio.Event()

    def handler(key: str, value: str) -> None:
        received.append((key, value))
        if len(received) == 3:
            got.set()

    path = tmp_path / "cmd"
    fifo = CommandFifo(path, handler)
    fifo.open()
    assert path.exists()
    # Two separate writers, as the provider may open the pipe per command.
    for chunk in (b"VOLUME=20\nTITLE=Song\n", b"ACTION=PAUSE\n"):
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, chunk)
        os.close(fd)
    await asyncio.wait_for(got.wait(), 2)
    assert received == [("VOLUME", "20"), ("TITLE", "Song"), ("ACTION", "PAUSE")]
    fifo.close()
    assert not path.exists()


async def test_pcm_input_skips_samples_before_and_after_arrival() -> None:
    read_fd, write_fd = os.pipe()
    source = PcmInput(read_fd)
    source.start()
    try:
        frames = b"".join(i.to_bytes(4, "little") for i in range(100))
        os.write(write_fd, frames[:40])  # samples 0..9
        await asyncio.wait_for(source.changed.wait(), 2)
        assert source.skip_to(25) == 25  # 10 present, 15 not yet arrived
        assert source.first_sample == 25
        source.changed.clear()
        os.write(write_fd, frames[40:])
        await asyncio.wait_for(source.changed.wait(), 2)
        chunk = source.take(5)
        assert [int.from_bytes(chunk[i : i + 4], "little") for i in range(0, 20, 4)] == list(
            range(25, 30)
        )
        os.close(write_fd)
        write_fd = -1
        while not source.eof:
            source.changed.clear()
            await asyncio.wait_for(source.changed.wait(), 2)
        assert source.available_samples == 70
    finally:
        source.close()
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
