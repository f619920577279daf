"""cliap2's watch over a PTP receiver's clock: `[STATUS] clock` on every state change.

Asks the host's grandmaster (through the streamer's lease) what the receiver sent, judges it
with `protocol.ptp_readiness`, and stops once the state is final for a start (ready, stalled,
or unmeasured when the daemon does not report contacts).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from airplay_provider.protocol.ptp_readiness import (
    ClockState,
    PeerContact,
    Readiness,
    assess,
    merge,
    settled,
)
from airplay_provider.protocol.streamer_status import ClockStatus, StatusEvent
from airplay_provider.streamer.ptp_master import PtpUnavailable

POLL_S = 0.1
FOLLOW_POLL_S = 1.0  # after the first final state: changes still show in status lines


class ContactSource(Protocol):
    """The part of `PtpLease` the watch needs."""

    async def contacts(self, peers: list[str]) -> dict[str, PeerContact] | None:
        """What the grandmaster heard from `peers`; None when it does not say."""


class StatusSink(Protocol):
    """The part of the streamer's status writer the watch needs."""

    def emit(self, event: StatusEvent) -> None:
        """Write one `[STATUS]` line."""


def clock_event(
    peer: str, readiness: Readiness, contact: PeerContact, since_ns: int, now_ns: int
) -> ClockStatus:
    """The `[STATUS] clock` event for a state reached at `now_ns` (SETPEERS at `since_ns`)."""
    ready_in = None
    if readiness.state is not ClockState.READY and readiness.ready_at_ns is not None:
        ready_in = max(0, (readiness.ready_at_ns - now_ns) // 1_000_000)
    return ClockStatus(
        "ptp",
        readiness.state.value,
        peer=peer,
        after_ms=max(0, (now_ns - since_ns) // 1_000_000),
        probes=contact.delay_requests,
        ready_in_ms=ready_in,
        cause=readiness.cause,
    )


async def watch_clock(
    lease: ContactSource,
    peer: str,
    peers: list[str],
    status: StatusSink,
    *,
    since_ns: int | None = None,
    poll_s: float = POLL_S,
    follow_poll_s: float | None = None,
    on_own_clock: Callable[[], Awaitable[ClockState]] | None = None,
    **limits: float,
) -> ClockState:
    """Report `peer`'s clock state (heard on any of `peers`) until it is final; that state.

    With `follow_poll_s`, go on watching at that pace after it and report every change (a
    receiver whose probes stop mid-stream becomes `stalled`) until cancelled or the lease
    closes. `limits` are `assess`'s (probe_lock_s, passive_follow_s, stall_s). A receiver that
    keeps its own clock is handed to `on_own_clock` (which follows it) instead of reported.
    """
    since = time.monotonic_ns() if since_ns is None else since_ns
    last: ClockState | None = None
    final = False
    while True:
        try:
            contacts = await lease.contacts(peers)
        except (OSError, TimeoutError, PtpUnavailable) as exc:
            if final or last is ClockState.UNMEASURED:  # the lease closed at teardown
                return last or ClockState.UNMEASURED
            status.emit(ClockStatus("ptp", ClockState.UNMEASURED.value, peer=peer, cause=str(exc)))
            return ClockState.UNMEASURED
        now = time.monotonic_ns()
        if contacts is None:
            status.emit(
                ClockStatus(
                    "ptp",
                    ClockState.UNMEASURED.value,
                    peer=peer,
                    cause="the PTP daemon does not report what receivers send",
                )
            )
            return ClockState.UNMEASURED
        contact = merge(contacts.values())
        readiness = assess(contact, since, now, **limits)
        if readiness.state is ClockState.OWN_CLOCK and on_own_clock is not None:
            return await on_own_clock()
        if readiness.state is not last:
            last = readiness.state
            status.emit(clock_event(peer, readiness, contact, since, now))
        final = final or settled(readiness.state)
        if final and follow_poll_s is None:
            return readiness.state
        await asyncio.sleep(follow_poll_s if final and follow_poll_s else poll_s)


def start_watch(
    lease: ContactSource,
    peer: str,
    peers: list[str],
    status: StatusSink,
    on_own_clock: Callable[[], Awaitable[ClockState]] | None = None,
) -> asyncio.Task[ClockState]:
    """Run `watch_clock` in the background from now (just after SETPEERS)."""
    unique = list(dict.fromkeys([peer, *peers]))
    return asyncio.create_task(
        watch_clock(
            lease,
            peer,
            unique,
            status,
            since_ns=time.monotonic_ns(),
            follow_poll_s=FOLLOW_POLL_S,
            on_own_clock=on_own_clock,
        ),
        name="clock-watch",
    )


async def stop_watch(task: asyncio.Task[ClockState] | None) -> None:
    """Cancel a watch (idempotent)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
