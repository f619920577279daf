"""The group start does not wait for a member whose clock is not ready (session/late_clock.py):
where a member's clock is (`clock_view`), when the start stops waiting (`decide`), and what the
`play` progress line says about a member that joins late."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from airplay_provider.host.cmd_play import progress_line
from airplay_provider.host.standalone import manual_device
from airplay_provider.player import AirPlayPlayer
from airplay_provider.protocol.streamer_status import ClockStatus, format_status
from airplay_provider.protocol.txt import StreamingProtocol
from airplay_provider.session import StreamSession
from airplay_provider.session.late_clock import (
    CLOCK_HOLD_S,
    COLD_WAIT_S,
    ClockView,
    clock_view,
    decide,
)
from airplay_provider.session.member import MemberState, SessionMember
from airplay_provider.session.processes import StreamerProcess, StreamTarget
from airplay_provider.session.reports import JoinReport, SessionState
from airplay_provider.session.timeline import PTP_SETTLE_S

CONNECTED = "[STATUS] connected host=10.0.0.2 port=7000 latency_ms=250 timing={}"
READY = ClockView(ready=True)
FAILED = ClockView(failed=True)
COLD = ClockView()


def _streamer(tmp_path: Path, timing: str = "ptp", setting: str = "auto") -> StreamerProcess:
    target = StreamTarget(
        name="tv", host="10.0.0.2", port=7000, protocol=StreamingProtocol.AIRPLAY2, timing=setting
    )
    process = StreamerProcess(target, tmp_path / "fifo")
    process.record(CONNECTED.format(timing))
    process.connected_at = 100.0
    return process


def _clock(process: StreamerProcess, at: float, state: str, ready_in_ms: int | None = None) -> None:
    process.record(format_status(ClockStatus("ptp", state, ready_in_ms=ready_in_ms)))
    process.statuses[-1] = (at, process.statuses[-1][1])


def test_a_member_not_on_ptp_is_ready_at_once(tmp_path: Path) -> None:
    assert clock_view(_streamer(tmp_path, "ntp"), 100.0) == READY


def test_a_member_not_heard_from_is_waited_for_until_the_cold_wait(tmp_path: Path) -> None:
    process = _streamer(tmp_path)
    cold = ClockView(hold_until=100.0 + COLD_WAIT_S)
    assert clock_view(process, 100.2) == cold  # no word yet: a passive follower may answer
    _clock(process, 100.1, "cold")
    assert clock_view(process, 100.0 + COLD_WAIT_S + 5) == cold
    _clock(process, 101.1, "probing", ready_in_ms=2300)  # a Sonos: first probe, ready later
    assert clock_view(process, 101.2) == ClockView(ready_at=101.1 + 2.3)


def test_a_probing_member_is_ready_when_its_streamer_expects(tmp_path: Path) -> None:
    process = _streamer(tmp_path)
    _clock(process, 101.0, "probing", ready_in_ms=1500)
    assert clock_view(process, 101.2) == ClockView(ready_at=102.5)
    _clock(process, 102.5, "ready")
    assert clock_view(process, 102.5) == READY


def test_a_stalled_member_failed_unless_its_player_insists_on_ptp(tmp_path: Path) -> None:
    auto = _streamer(tmp_path)
    _clock(auto, 105.0, "stalled")
    assert clock_view(auto, 105.0) == FAILED
    insists = _streamer(tmp_path, setting="ptp")
    _clock(insists, 105.0, "own_clock")
    assert clock_view(insists, 105.0) == ClockView(ready=True, failed=True)


def test_an_unmeasured_member_is_held_the_fixed_settle_time(tmp_path: Path) -> None:
    process = _streamer(tmp_path)
    _clock(process, 100.1, "unmeasured")
    settle = 100.0 + PTP_SETTLE_S
    assert clock_view(process, settle - 0.1) == ClockView(ready_at=settle)
    assert clock_view(process, settle) == ClockView(ready=True, ready_at=settle)
    stalled_before = _streamer(tmp_path)  # measure=False: its clock stalled on a first try
    assert clock_view(stalled_before, settle, measure=False).ready


def test_nobody_ready_waits_until_all_failed() -> None:
    assert decide({"a": COLD, "b": FAILED}, None, 10.0, 1.0) is None
    assert decide({"a": FAILED, "b": FAILED}, None, 10.0, 1.0) == ([], ["a", "b"])


def test_a_member_of_unknown_readiness_holds_the_start_at_most_the_hold() -> None:
    views = {"a": READY, "b": COLD}
    assert decide(views, 10.0, 10.5, 1.0) is None
    assert decide(views, 10.0, 11.0, 1.0) == (["a"], ["b"])


def test_a_silent_member_holds_the_start_only_until_its_cold_wait() -> None:
    views = {"a": READY, "b": ClockView(hold_until=11.6)}
    assert decide(views, 10.0, 11.5, 3.5) is None
    assert decide(views, 10.0, 11.6, 3.5) == (["a"], ["b"])
    assert decide(views, 10.0, 11.0, 1.0) == (["a"], ["b"])  # nor beyond the hold


def test_a_locking_sonos_is_waited_for_so_the_group_starts_together() -> None:
    # RAOP rooms ready at 10.2; the Sonos probes from 11.1 and is ready at 13.4
    views = {"raop": READY, "sonos": ClockView(ready_at=13.4)}
    assert decide(views, 10.2, 11.2, CLOCK_HOLD_S) is None
    assert decide({"raop": READY, "sonos": READY}, 13.4, 13.4, CLOCK_HOLD_S) == (
        ["raop", "sonos"],
        [],
    )


def test_a_member_ready_within_the_hold_is_waited_for_and_a_later_one_not() -> None:
    soon = {"a": READY, "b": ClockView(ready_at=10.8)}
    assert decide(soon, 10.0, 10.1, 1.0) is None
    assert decide({"a": READY, "b": READY}, 10.8, 10.8, 1.0) == (["a", "b"], [])
    later = {"a": READY, "b": ClockView(ready_at=11.2), "c": FAILED}
    assert decide(later, 10.0, 10.0, 1.0) == (["a"], ["b", "c"])  # at once: no need to wait
    assert decide({"a": READY, "b": FAILED}, 10.0, 10.0, 0.0) == (["a"], ["b"])


async def test_the_progress_line_says_who_joins_late_and_why(tmp_path: Path) -> None:
    tv = AirPlayPlayer(manual_device("127.0.0.1", 5000, name="TV"))
    session = StreamSession(_nothing())
    target = StreamTarget(
        name="tv", host="10.0.0.2", port=7000, protocol=StreamingProtocol.AIRPLAY2
    )
    member = SessionMember(target, offset=0, fifo_dir=tmp_path)
    member.streamer.record(CONNECTED.format("ptp"))
    member.streamer.record(format_status(ClockStatus("ptp", "probing")))
    member.late_reason = "its PTP clock was probing when the others were ready"
    session.waiting = {tv.player_id: member}
    assert progress_line(session, [tv], None).endswith(
        "TV: connecting [ptp probing] (joins late: its PTP clock was probing when the others"
        " were ready)"
    )
    del session.waiting[tv.player_id]
    member.state = MemberState.PLAYING
    member.streamer.record(format_status(ClockStatus("ptp", "ready")))
    session.members = {tv.player_id: member}
    assert progress_line(session, [tv], None).endswith(
        "TV: playing [ptp ready] (joined late: its PTP clock was probing when the others were"
        " ready)"
    )


async def _nothing() -> AsyncIterator[bytes]:
    empty: list[bytes] = []
    for chunk in empty:
        yield chunk


async def test_a_member_ready_while_the_group_is_paused_joins_at_the_resume(
    tmp_path: Path,
) -> None:
    session = StreamSession(_nothing())
    session.state = SessionState.PAUSED
    target = StreamTarget(
        name="tv", host="10.0.0.2", port=7000, protocol=StreamingProtocol.AIRPLAY2
    )
    member = SessionMember(target, offset=0, fifo_dir=tmp_path)
    member.streamer.record(CONNECTED.format("ptp"))
    member.streamer.record(format_status(ClockStatus("ptp", "ready")))
    session.waiting = {member.key: member}
    join = JoinReport(member.key, 0, 0)
    await session._join_when_ready(member, join)
    assert session.waiting == {}
    assert session.departed == [member]
    assert member.state is MemberState.STOPPED
    assert session._joins_after_resume == [target]  # a fresh late join when it resumes
    removed = SessionMember(target, offset=0, fifo_dir=tmp_path)
    removed.streamer.record(CONNECTED.format("ptp"))
    session.waiting = {removed.key: removed}
    await session.remove_member(removed.key)  # removed on purpose while set aside
    await session._join_when_ready(removed, JoinReport(removed.key, 0, 0))
    assert session._joins_after_resume == [target]  # not queued again
    assert removed.state is MemberState.STOPPED
