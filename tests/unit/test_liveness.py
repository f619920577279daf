"""The rule that says a receiver is surely gone (protocol/liveness.py) and the rejoin ladder
(session/rejoin.py), without sockets: times are numbers, attempts are stand-in coroutines."""

from __future__ import annotations

import asyncio

import pytest

from airplay_provider.protocol.liveness import (
    PORT_CLOSED,
    RTSP_CLOSED,
    RTSP_RESET,
    ReceiverWatch,
)
from airplay_provider.session.processes import StreamTarget
from airplay_provider.session.rejoin import (
    REJOIN_DELAYS_S,
    Rejoin,
    RejoinState,
    climb,
)


def test_a_closed_or_reset_rtsp_connection_alone_is_enough() -> None:
    watch = ReceiverWatch()
    assert watch.rtsp_lost(reset=False) == RTSP_CLOSED
    assert watch.rtsp_lost(reset=True) == RTSP_RESET
    assert RTSP_CLOSED.startswith("receiver gone")


def test_one_port_refusal_is_not_death_two_close_together_are() -> None:
    watch = ReceiverWatch(refusals=2, window_s=0.5, grace_s=0.5)
    watch.restarted(10.0)
    assert watch.port_refused(11.0) is None  # a stray one
    assert watch.port_refused(11.6) is None  # the next too far from it: still not sure
    assert watch.port_refused(11.9) == PORT_CLOSED  # two within 0.5 s


def test_refusals_right_after_a_start_or_resume_are_ignored() -> None:
    watch = ReceiverWatch(refusals=2, window_s=0.5, grace_s=0.5)
    watch.restarted(10.0)
    for moment in (10.0, 10.1, 10.2, 10.3, 10.49):
        assert watch.port_refused(moment) is None
    assert watch.port_refused(10.55) is None  # the grace ones do not count toward the two
    assert watch.port_refused(10.6) == PORT_CLOSED
    watch.restarted(20.0)  # a resume forgets what was seen
    assert watch.port_refused(20.6) is None
    assert watch.port_refused(20.7) == PORT_CLOSED


def test_a_watch_refuses_a_rule_that_cannot_work() -> None:
    with pytest.raises(ValueError):
        ReceiverWatch(refusals=0)
    with pytest.raises(ValueError):
        ReceiverWatch(window_s=0)


def _target() -> StreamTarget:
    return StreamTarget(name="Kitchen", host="127.0.0.1", port=5000)


def test_the_ladder_is_music_assistants() -> None:
    assert REJOIN_DELAYS_S == (5.0, 15.0, 30.0, 60.0, 120.0)


async def test_climb_tries_after_each_delay_until_an_attempt_succeeds() -> None:
    rejoin = Rejoin(_target())
    answers = ["refused", "refused", None]
    seen: list[tuple[RejoinState, int]] = []

    async def attempt(target: StreamTarget) -> str | None:
        assert target is rejoin.target
        return answers.pop(0)

    await climb(rejoin, (0.0, 0.0, 0.0, 0.0), attempt, lambda: seen.append(_snap(rejoin)))
    assert rejoin.state is RejoinState.REJOINED
    assert rejoin.attempts == 3
    assert answers == []
    assert seen == [
        (RejoinState.WAITING, 0),
        (RejoinState.TRYING, 1),
        (RejoinState.WAITING, 1),
        (RejoinState.TRYING, 2),
        (RejoinState.WAITING, 2),
        (RejoinState.TRYING, 3),
        (RejoinState.REJOINED, 3),
    ]


async def test_climb_gives_up_after_the_last_rung() -> None:
    rejoin = Rejoin(_target())

    async def attempt(_target: StreamTarget) -> str | None:
        return "refused"

    await climb(rejoin, (0.0, 0.0), attempt, lambda: None)
    assert rejoin.state is RejoinState.GAVE_UP
    assert (rejoin.attempts, rejoin.error) == (2, "refused")
    assert rejoin.describe(0.0) == "gave up rejoining after 2 attempts"


async def test_a_halt_ends_the_wait_at_once_and_nothing_is_tried() -> None:
    rejoin = Rejoin(_target())
    tried: list[StreamTarget] = []

    async def attempt(target: StreamTarget) -> str | None:
        tried.append(target)
        return None

    climbing = asyncio.create_task(climb(rejoin, (3600.0,), attempt, lambda: None))
    await asyncio.sleep(0)
    assert rejoin.state is RejoinState.WAITING
    rejoin.halt.set()
    await asyncio.wait_for(climbing, 1.0)  # not an hour
    assert rejoin.state is RejoinState.HALTED
    assert tried == []


def test_what_a_person_sees() -> None:
    rejoin = Rejoin(_target(), next_at=104.4)
    assert rejoin.describe(100.0) == "rejoining in 4 s"
    rejoin.state, rejoin.attempts = RejoinState.TRYING, 2
    assert rejoin.describe(100.0) == "rejoining (attempt 2)…"
    rejoin.state = RejoinState.REJOINED
    assert rejoin.describe(100.0) == "rejoined"


def _snap(rejoin: Rejoin) -> tuple[RejoinState, int]:
    return rejoin.state, rejoin.attempts
