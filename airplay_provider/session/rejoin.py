"""Rejoin: a member dropped because its receiver went away comes back by itself.

The session starts one `Rejoin` per such member and walks it up a retry ladder
(`REJOIN_DELAYS_S`); each attempt is a late join (`StreamSession.add_member`), so the member
comes back in sync. The attempts are visible (`Rejoin.describe`, and the session notifies its
listeners at every step). A ladder stops when the member is back, when it ran out of rungs,
or when `halt` is set (the session ends, or the member was removed on purpose).
`SessionRejoins` holds the session's side of it (methods of `StreamSession`, group.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from airplay_provider.protocol.streamer_status import ErrorCode
from airplay_provider.session.member import SessionMember
from airplay_provider.session.processes import StreamTarget
from airplay_provider.session.reports import JoinReport, SessionError, SessionState

#: Seconds before each attempt (as Music Assistant does since 2026-08).
REJOIN_DELAYS_S: Final = (5.0, 15.0, 30.0, 60.0, 120.0)
#: The failures a member comes back from by itself.
REJOIN_CODES: Final = frozenset({ErrorCode.RECEIVER_GONE})


class RejoinState(enum.StrEnum):
    """Where a rejoin ladder is."""

    WAITING = "waiting"  # until `next_at`
    TRYING = "trying"
    REJOINED = "rejoined"
    GAVE_UP = "gave_up"
    HALTED = "halted"  # session ended, or the member was removed on purpose


@dataclass
class Rejoin:
    """One member's way back."""

    target: StreamTarget
    state: RejoinState = RejoinState.WAITING
    attempts: int = 0
    next_at: float | None = None  # event-loop time of the next attempt
    error: str | None = None  # why the last attempt failed
    halt: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def active(self) -> bool:
        """Still waiting or trying."""
        return self.state in (RejoinState.WAITING, RejoinState.TRYING)

    def describe(self, now: float) -> str:
        """For a person: `rejoining in 4 s`, `rejoining…`, `rejoined`, `gave up after 5 tries`."""
        if self.state is RejoinState.WAITING and self.next_at is not None:
            return f"rejoining in {max(0, round(self.next_at - now))} s"
        if self.state is RejoinState.TRYING:
            return f"rejoining (attempt {self.attempts})…"
        if self.state is RejoinState.GAVE_UP:
            return f"gave up rejoining after {self.attempts} attempts"
        return self.state.value


async def climb(
    rejoin: Rejoin,
    delays: Sequence[float],
    attempt: Callable[[StreamTarget], Awaitable[str | None]],
    notify: Callable[[], None],
) -> None:
    """Walk the ladder: wait each delay (or until halted), then `attempt` (None: rejoined)."""
    loop = asyncio.get_running_loop()
    for number, delay in enumerate(delays, 1):
        rejoin.state, rejoin.next_at = RejoinState.WAITING, loop.time() + delay
        notify()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rejoin.halt.wait(), delay)
        if rejoin.halt.is_set():
            break
        rejoin.state, rejoin.next_at, rejoin.attempts = RejoinState.TRYING, None, number
        notify()
        rejoin.error = await attempt(rejoin.target)
        if rejoin.error is None:
            rejoin.state = RejoinState.REJOINED
            notify()
            return
        if rejoin.halt.is_set():
            break
    else:
        rejoin.state = RejoinState.GAVE_UP
        notify()
        return
    rejoin.state, rejoin.next_at = RejoinState.HALTED, None
    notify()


class SessionRejoins:
    """The rejoin part of `StreamSession` (a mixin: its state lives in the session)."""

    # The session's state these methods read and write (set in `StreamSession.__init__`).
    rejoins: dict[str, Rejoin]
    rejoin_delays_s: tuple[float, ...]
    members: dict[str, SessionMember]
    state: SessionState
    logger: logging.Logger
    _rejoining: set[asyncio.Task[None]]
    _stopping: bool

    async def add_member(self, target: StreamTarget) -> JoinReport:
        raise NotImplementedError

    async def _remove(self, member: SessionMember, *, graceful: bool) -> None:
        raise NotImplementedError

    def _notify(self) -> None:
        raise NotImplementedError

    def _start_rejoin(self, target: StreamTarget) -> None:
        """Bring a member whose receiver went away back by itself (session/rejoin.py)."""
        current = self.rejoins.get(target.key)
        if self._stopping or not self.rejoin_delays_s or (current and current.active):
            return
        rejoin = self.rejoins[target.key] = Rejoin(target)
        task = asyncio.create_task(
            climb(rejoin, self.rejoin_delays_s, self._rejoin_attempt, self._notify),
            name=f"rejoin-{target.key}",
        )
        self._rejoining.add(task)
        task.add_done_callback(self._rejoining.discard)

    async def _rejoin_attempt(self, target: StreamTarget) -> str | None:
        """One late join of a member that went away; None when it is back, else why not."""
        if self._stopping or self.state is not SessionState.PLAYING:
            return f"session is {self.state}"
        try:
            join = await self.add_member(target)
        except SessionError as exc:
            return str(exc)
        if join.error is not None:
            return join.error
        if self.rejoins[target.key].halt.is_set():  # removed on purpose while it connected
            member = self.members.get(target.key)
            if member is not None:
                await self._remove(member, graceful=True)
            return "removed while it rejoined"
        self.logger.info("%s rejoined at session frame %d", target.name, join.offset)
        return None
