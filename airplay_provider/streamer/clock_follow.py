"""cliap2 following a receiver's own PTP clock (a standalone HomePod on OS 27) instead of ours.

The host's grandmaster daemon owns UDP 319/320, so it runs the servo (`streamer.ptp_followers`);
this side asks it to follow the receiver, polls the result (`PeerClockReport`) and keeps it in
a `PeerClock`, through which every network time we send (realtime 0xD7 sync packets, buffered
SETRATEANCHORTIME) is translated onto the receiver's clock and named by its clock id. Status:
`[STATUS] clock mode=ptp state=locking`, then `state=tracking offset_us=… drift_ppb=…
error_us=…` (the fit's measured error bound, known only once the rate is fitted); a clock
that never reaches us within `LOCK_WAIT_S` ends as `own_clock` (the session's stall handling).
"""

from __future__ import annotations

import asyncio
import time
from typing import Final, Protocol

from airplay_provider.protocol.ptp_follow import PeerClockReport
from airplay_provider.protocol.ptp_readiness import OWN_CLOCK_CAUSE, ClockState
from airplay_provider.protocol.streamer_status import ClockStatus
from airplay_provider.streamer.clock_watch import StatusSink
from airplay_provider.streamer.ptp_master import PtpUnavailable

POLL_S: Final = 0.1
TRACK_POLL_S: Final = 0.125  # anchors go out 8 times a second
#: The receiver's Sync stream starts once we stop offering our clock (the field: at once; our
#: emulator: after 1 s); locked 1 s of exchanges later. Without any Sync by `NO_SYNC_S`, or
#: no lock by `LOCK_WAIT_S`, it is not a clock we can follow.
NO_SYNC_S: Final = 2.0
LOCK_WAIT_S: Final = 5.0
#: A tracking receiver's drift is reported again once it moved this much (the rate needs a
#: few seconds of exchanges; the first `tracking` line usually says 0).
DRIFT_REPORT_PPB: Final = 5_000
NO_FOLLOW_CAUSE: Final = "the PTP daemon cannot follow a receiver's clock (an older version)"
NEVER_LOCKED_CAUSE: Final = "its own PTP clock never reached us (no Sync/Delay_Resp)"


class FollowSource(Protocol):
    """The part of `PtpLease` the follower needs."""

    async def follow(self, peers: list[str]) -> dict[str, PeerClockReport]:
        """Follow `peers`' own clocks; how far the daemon got with each."""


class PeerClock:
    """The receiver clock we follow (None: ours), as the daemon last reported it."""

    def __init__(self) -> None:
        self.report: PeerClockReport | None = None
        self.measured = asyncio.Event()  # set once locked

    def update(self, report: PeerClockReport | None) -> None:
        """The daemon's latest report."""
        self.report = report
        if self.locked:
            self.measured.set()

    @property
    def locked(self) -> bool:
        """Whether network times go out on the receiver's clock."""
        report = self.report
        return (
            report is not None
            and report.locked
            and report.translation is not None
            and report.clock_id is not None
        )

    def network_time(
        self, ptp_ns: int, our_clock_id: int, *, governs_ns: int = 0
    ) -> tuple[int, int]:
        """(network time, timeline clock id) for an instant `ptp_ns` on our PTP timeline.

        The receiver plays on from an anchor at its own clock's pace, which drifts from ours;
        for an anchor that stays in force `governs_ns` (until the next one), the time is moved
        by half that drift, so the error is centred over the stretch instead of growing to it.
        """
        report = self.report
        if report is None or report.translation is None or report.clock_id is None:
            return ptp_ns, our_clock_id
        if not report.locked:
            return ptp_ns, our_clock_id
        translation = report.translation
        centre = translation.rate_ppb * governs_ns // (2 * 1_000_000_000)
        return translation.to_peer(ptp_ns) + centre, report.clock_id


def _best(reports: dict[str, PeerClockReport], peer: str) -> PeerClockReport | None:
    """The receiver's report (on whichever of its addresses its clock reached us)."""
    ranked = sorted(
        reports.items(), key=lambda item: (not item[1].locked, item[0] != peer, -item[1].exchanges)
    )
    return ranked[0][1] if ranked else None


def follow_event(peer: str, report: PeerClockReport | None, since_ns: int) -> ClockStatus:
    """The `[STATUS] clock` event for a follower state."""
    after = max(0, (time.monotonic_ns() - since_ns) // 1_000_000)
    if report is None or not report.locked or report.translation is None:
        exchanges = report.exchanges if report is not None else 0
        return ClockStatus(
            "ptp", ClockState.LOCKING.value, peer=peer, after_ms=after, probes=exchanges
        )
    return ClockStatus(
        "ptp",
        ClockState.TRACKING.value,
        peer=peer,
        after_ms=after,
        probes=report.exchanges,
        offset_us=report.translation.offset_ns // 1000,
        drift_ppb=report.translation.rate_ppb,
        error_us=None if report.error_ns is None else -(-report.error_ns // 1000),
    )


async def follow_clock(
    lease: FollowSource,
    peer: str,
    peers: list[str],
    status: StatusSink,
    clock: PeerClock,
    *,
    since_ns: int | None = None,
    lock_wait_s: float = LOCK_WAIT_S,
) -> ClockState:
    """Have the daemon follow `peer` (on `peers`), keep `clock` current until cancelled or the
    lease closes; the state it ended in (own_clock when it cannot follow)."""
    since = time.monotonic_ns() if since_ns is None else since_ns
    started = time.monotonic()
    unique = list(dict.fromkeys([peer, *peers]))
    last: ClockState | None = None
    reported_drift = 0
    while True:
        try:
            reports = await lease.follow(unique)
        except (OSError, TimeoutError, PtpUnavailable):
            return last or ClockState.UNMEASURED  # the lease closed (teardown)
        if not reports:
            status.emit(
                ClockStatus("ptp", ClockState.OWN_CLOCK.value, peer=peer, cause=NO_FOLLOW_CAUSE)
            )
            return ClockState.OWN_CLOCK
        report = _best(reports, peer)
        clock.update(report)
        state = ClockState.TRACKING if clock.locked else ClockState.LOCKING
        waited = time.monotonic() - started
        silent = report is None or report.clock_id is None
        never = waited > lock_wait_s or (silent and waited > min(NO_SYNC_S, lock_wait_s))
        if state is ClockState.LOCKING and last is not ClockState.TRACKING and never:
            cause = f"{OWN_CLOCK_CAUSE}; {NEVER_LOCKED_CAUSE}"
            status.emit(ClockStatus("ptp", ClockState.OWN_CLOCK.value, peer=peer, cause=cause))
            return ClockState.OWN_CLOCK
        drift = report.translation.rate_ppb if report and report.translation else 0
        moved = state is ClockState.TRACKING and abs(drift - reported_drift) >= DRIFT_REPORT_PPB
        if state is not last or moved:  # (while locking, the fit's rate is not news yet)
            last, reported_drift = state, drift
            status.emit(follow_event(peer, report, since))
        await asyncio.sleep(TRACK_POLL_S if state is ClockState.TRACKING else POLL_S)
