"""The streamer interface: exact argv for both streamers, targets from players, the command
FIFO writer (real FIFO, no streamer needed)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Literal

import pytest

from airplay_provider.config import PlayerSettings
from airplay_provider.host.standalone import manual_device
from airplay_provider.player import AirPlayPlayer
from airplay_provider.protocol.txt import (
    RAOP_SERVICE_TYPE,
    StreamingProtocol,
    merge_records,
    parse_service,
)
from airplay_provider.session.players import PlaybackError, target_for_player
from airplay_provider.session.processes import (
    CommandPipe,
    StreamTarget,
    build_ap2_argv,
    build_argv,
    build_raop_argv,
)
from airplay_provider.streamer.airplay2_options import parse_options as parse_ap2
from airplay_provider.streamer.raop_options import UsageError
from airplay_provider.streamer.raop_options import parse_options as parse_raop

NTP = 17198145500547208786


def test_raop_argv_in_music_assistants_order() -> None:
    target = StreamTarget(
        name="Kitchen",
        host="192.0.2.7",
        port=5000,
        volume=130,
        latency_ms=2000,
        txt={"et": "0,1", "md": "0,1,2", "am": "AirPort10,115", "pw": "false", "cn": "0,1"},
        password="pw",
        secret="ab:cdef",
        dacp_id="0123456789ABCDEF",
        active_remote=12345,
        udn="AABBCCDDEEFF@Kitchen",
        alac=True,
    )
    assert build_raop_argv(target, NTP, "/tmp/x-cmd") == [
        "-ntpstart", str(NTP), "-port", "5000", "-latency", "2000", "-volume", "100",
        "-encrypt", "-alac", "-et", "0,1", "-md", "0,1,2", "-am", "AirPort10,115",
        "-pw", "false", "-password", "pw", "-secret", "cdef", "-dacp", "0123456789ABCDEF",
        "-activeremote", "12345", "-cmdpipe", "/tmp/x-cmd", "-udn", "AABBCCDDEEFF@Kitchen",
        "192.0.2.7", "-",
    ]  # fmt: skip
    options = parse_raop(build_raop_argv(target, NTP, "/tmp/x-cmd"))  # cliraop accepts it
    assert (options.ntpstart, options.volume, options.use_encryption) == (NTP, 100, True)


def test_minimal_raop_argv() -> None:
    target = StreamTarget(name="x", host="127.0.0.1", port=6000, encrypt=False)
    assert build_raop_argv(target, NTP, "p") == [
        "-ntpstart", str(NTP), "-port", "6000", "-latency", "1000",
        "-cmdpipe", "p", "127.0.0.1", "-",
    ]  # fmt: skip
    argv = build_argv(target, NTP, "p")
    assert argv[0] == sys.executable
    assert argv[1].endswith("/bin/cliraop")


def test_ap2_argv_parses_with_cliap2() -> None:
    target = StreamTarget(
        name="Living Room",
        host="192.0.2.8",
        port=7000,
        protocol=StreamingProtocol.AIRPLAY2,
        volume=35,
        latency_ms=250,
        txt={"deviceid": "AA:BB:CC:DD:EE:FF", "features": "0x4A7FDFD5,0xBC157FDE", "bad": "a=b"},
        dacp_id="0123456789ABCDEF",
        hostname="Living-Room.local",
    )
    argv = build_ap2_argv(target, NTP, "/tmp/ap2-cmd")
    assert argv[:10] == [
        "--name", "Living Room", "--hostname", "Living-Room.local", "--address", "192.0.2.8",
        "--port", "7000", "--txt", '"deviceid=AA:BB:CC:DD:EE:FF" "features=0x4A7FDFD5,0xBC157FDE" ',
    ]  # fmt: skip
    options = parse_ap2(argv)
    assert options.txt == {"deviceid": "AA:BB:CC:DD:EE:FF", "features": "0x4A7FDFD5,0xBC157FDE"}
    assert (options.common.ntpstart, options.common.volume) == (NTP, 35)
    assert options.common.cmdpipe == "/tmp/ap2-cmd"
    assert not options.common.alac  # uncompressed unless the player turned compression on
    assert "--alac" not in argv
    assert build_argv(target, NTP, "p")[1].endswith("/bin/cliap2")
    compressed = build_ap2_argv(replace(target, alac=True), NTP, "p")
    assert compressed[compressed.index("--alac") + 1] == "on"
    assert parse_ap2(compressed).common.alac
    assert "--stream-type" not in argv  # auto: cliap2 chooses by feature bits and model
    assert options.stream_type == "auto"


@pytest.mark.parametrize("choice", ["realtime", "buffered"])
def test_ap2_argv_passes_a_players_stream_type(choice: Literal["realtime", "buffered"]) -> None:
    target = StreamTarget(
        name="Den",
        host="192.0.2.8",
        port=7000,
        protocol=StreamingProtocol.AIRPLAY2,
        ap2_stream_type=choice,
    )
    argv = build_ap2_argv(target, NTP, "p")
    assert argv[argv.index("--stream-type") + 1] == choice
    assert parse_ap2(argv).stream_type == choice


def test_target_for_player_carries_the_ap2_stream_type() -> None:
    device = manual_device("127.0.0.1", 5123, name="Den")
    player = AirPlayPlayer(device, PlayerSettings(ap2_stream_type="realtime"))
    assert target_for_player(player).ap2_stream_type == "realtime"
    assert target_for_player(AirPlayPlayer(device, PlayerSettings())).ap2_stream_type == "auto"


def test_target_for_player_uses_settings_and_txt() -> None:
    device = manual_device("127.0.0.1", 5123, name="Den")
    settings = PlayerSettings(sync_adjust_ms=-40, output_buffer_ms=9000, encryption=False)
    player = AirPlayPlayer(device, settings, volume_level=42)
    target = target_for_player(player, dacp_id="0123456789ABCDEF", active_remote="271828")
    assert (target.host, target.port, target.name) == ("127.0.0.1", 5123, "Den")
    assert (target.volume, target.sync_adjust_ms, target.encrypt) == (42, -40, False)
    assert target.latency_ms == 4000  # clamped to what cliraop accepts
    assert target.key == player.player_id
    assert target.txt["md"] == "0,1,2"
    assert target.active_remote == 271828  # the stream's own token, never the MAC-derived one
    assert target_for_player(player).active_remote is None  # no DACP server: no token
    assert target.udn == device.raop.service_name if device.raop else False


def test_manual_devices_get_stable_locally_administered_macs() -> None:
    first = manual_device("127.0.0.1", 5000)
    assert first.player_id == manual_device("127.0.0.1", 5000).player_id
    assert first.player_id != manual_device("127.0.0.1", 5001).player_id
    assert int(first.mac[:2], 16) & 0x03 == 0x02
    assert first.address == "127.0.0.1"


def test_player_without_address_is_refused() -> None:
    device = manual_device("127.0.0.1", 5000)
    player = AirPlayPlayer(device.__class__(**{**device.__dict__, "address": None}))
    with pytest.raises(PlaybackError, match="no usable address"):
        target_for_player(player)


async def test_command_pipe_writes_lines_and_reopens_after_reader_restart(tmp_path: Path) -> None:
    fifo = tmp_path / "cmd"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    pipe = CommandPipe(fifo)
    try:
        assert await pipe.send("TITLE=a\nb", "ACTION=SENDMETA")
        assert os.read(reader, 1000) == b"TITLE=a b\nACTION=SENDMETA\n"  # no injected lines
        os.close(reader)  # the streamer went away: EPIPE, and no reader to reopen to
        assert not await pipe.send("VOLUME=10")
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a new streamer on the same FIFO
        assert await pipe.send("VOLUME=20")
        assert os.read(reader, 1000) == b"VOLUME=20\n"
    finally:
        pipe.close()
        os.close(reader)


async def test_command_pipe_without_reader_gives_up(tmp_path: Path) -> None:
    pipe = CommandPipe(tmp_path / "never-created")
    started = time.monotonic()
    assert not await pipe.send("VOLUME=1")
    assert 0.5 < time.monotonic() - started < 3.0  # retried ~1 s (20 × 50 ms), then gave up
    fifo = tmp_path / "no-reader"
    os.mkfifo(fifo)
    assert not await CommandPipe(fifo).send("VOLUME=1")  # ENXIO: no streamer reads it


async def test_command_pipe_waits_for_a_late_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "late"
    os.mkfifo(fifo)
    pipe = CommandPipe(fifo)
    sending = asyncio.ensure_future(pipe.send("ACTION=PLAY"))
    await asyncio.sleep(0.2)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert await sending
        assert os.read(reader, 100) == b"ACTION=PLAY\n"
    finally:
        pipe.close()
        os.close(reader)


def test_fallback_addresses_reach_both_streamers_and_are_checked() -> None:
    target = StreamTarget(
        name="Hall", host="10.1.2.3", port=5000, fallback_hosts=("192.0.2.5", "fd00::5")
    )
    argv = build_raop_argv(target, NTP, "p")
    assert argv[-4:] == ["-fallback", "192.0.2.5,fd00::5", "10.1.2.3", "-"]
    assert parse_raop(argv).fallback_hosts == ("192.0.2.5", "fd00::5")
    assert parse_raop(build_raop_argv(StreamTarget("x", "h", 1), NTP, "p")).fallback_hosts == ()
    ap2 = StreamTarget(
        name="Hall",
        host="10.1.2.3",
        port=7000,
        protocol=StreamingProtocol.AIRPLAY2,
        fallback_hosts=("[fd00::5]",),
    )
    assert parse_ap2(build_ap2_argv(ap2, NTP, "p")).common.fallback_hosts == ("fd00::5",)
    with pytest.raises(UsageError, match=r"-fallback: 'kitchen\.local' is not an IP address"):
        parse_raop(["-port", "5000", "-fallback", "192.0.2.5,kitchen.local", "10.1.2.3", "-"])


def test_target_for_player_passes_the_other_addresses() -> None:
    record = parse_service(
        RAOP_SERVICE_TYPE,
        f"AABBCCDDEEFF@Hall.{RAOP_SERVICE_TYPE}",
        port=5000,
        addresses=["192.0.2.5", "fd00::5"],
        properties={"am": "AirPort10,115", "et": "0"},
    )
    player = AirPlayPlayer(merge_records(record, None), PlayerSettings())
    target = target_for_player(player)
    assert (target.host, target.fallback_hosts) == ("192.0.2.5", ("fd00::5",))
