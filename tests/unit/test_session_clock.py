"""A member's clock as the session and the user see it: the label of status and progress lines,
the final `clock` event, the player's timing setting on the streamer's command line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from airplay_provider.config import CONF_AIRPLAY2_TIMING, ConfigValidationError, PlayerSettings
from airplay_provider.host.cmd_play import progress_line
from airplay_provider.host.standalone import manual_device
from airplay_provider.player import AirPlayPlayer
from airplay_provider.protocol.streamer_status import ClockStatus, format_status
from airplay_provider.protocol.txt import StreamingProtocol
from airplay_provider.session import StreamSession
from airplay_provider.session.clock import clock_final, clock_label, describe_clock, wait_clock
from airplay_provider.session.member import MemberState, SessionMember
from airplay_provider.session.processes import StreamerProcess, StreamTarget, build_ap2_argv

CONNECTED_PTP = (
    "[STATUS] connected host=10.0.0.2 port=7000 latency_ms=250 timing=ptp pairing=transient"
)


def _ap2(timing: str = "auto") -> StreamTarget:
    return StreamTarget(
        name="tv", host="10.0.0.2", port=7000, protocol=StreamingProtocol.AIRPLAY2, timing=timing
    )


def test_the_label_follows_the_clock_events(tmp_path: Path) -> None:
    process = StreamerProcess(_ap2(), tmp_path / "fifo")
    assert clock_label(process) is None  # not connected yet
    process.record(CONNECTED_PTP)
    assert clock_label(process) == "ptp"
    process.record(format_status(ClockStatus("ptp", "probing", peer="10.0.0.2", probes=2)))
    assert clock_label(process) == "ptp probing"
    assert not clock_final(process.last(ClockStatus))
    process.record(format_status(ClockStatus("ptp", "ready", peer="10.0.0.2", after_ms=3400)))
    assert clock_label(process) == "ptp ready"
    assert clock_final(process.last(ClockStatus))
    ntp = StreamerProcess(_ap2(), tmp_path / "fifo2")
    ntp.record(CONNECTED_PTP.replace("timing=ptp", "timing=ntp"))
    assert clock_label(ntp) == "ntp"


async def test_wait_clock_returns_the_final_event_and_none_without_one(tmp_path: Path) -> None:
    process = StreamerProcess(_ap2(), tmp_path / "fifo")
    process.record(CONNECTED_PTP)
    assert await wait_clock(process, timeout=0.1) is None  # (not running: no wait)
    stalled = ClockStatus("ptp", "stalled", after_ms=5000, probes=0, cause="UDP 319/320 blocked")
    process.record(format_status(stalled))
    assert await wait_clock(process, timeout=0.1) == stalled
    line = describe_clock("TV", stalled)
    assert line == "TV: PTP clock stalled after 5.0 s: UDP 319/320 blocked"


async def test_the_progress_line_shows_each_members_clock(tmp_path: Path) -> None:
    kitchen = AirPlayPlayer(manual_device("127.0.0.1", 5000, name="Kitchen"))
    session = StreamSession(_nothing())
    member = SessionMember(_ap2(), offset=0, fifo_dir=tmp_path)
    member.state = MemberState.PLAYING
    member.streamer.record(CONNECTED_PTP)
    member.streamer.record(format_status(ClockStatus("ptp", "ready")))
    session.members = {kitchen.player_id: member}
    assert progress_line(session, [kitchen], None).endswith("Kitchen: playing [ptp ready]")


async def _nothing() -> AsyncIterator[bytes]:
    empty: list[bytes] = []
    for chunk in empty:
        yield chunk


def test_the_players_timing_reaches_cliap2() -> None:
    assert "--timing" not in build_ap2_argv(_ap2("auto"), 1, "/tmp/x")
    argv = build_ap2_argv(_ap2("ntp"), 1, "/tmp/x")
    assert argv[argv.index("--timing") + 1] == "ntp"
    assert PlayerSettings.from_values({}).airplay2_timing == "auto"
    assert PlayerSettings.from_values({CONF_AIRPLAY2_TIMING: "ptp"}).airplay2_timing == "ptp"
    with pytest.raises(ConfigValidationError):
        PlayerSettings.from_values({CONF_AIRPLAY2_TIMING: "gps"})
