"""A session member's clock: wait until its receiver follows our PTP clock, and say so.

cliap2 reports `[STATUS] clock mode=ptp state=…` from SETPEERS on (`streamer.clock_watch`);
the session holds a PTP member until `ready` (then schedules its first frame), falls back to
NTP timing on `stalled` when the player's timing is `auto`, and keeps the fixed
`PTP_SETTLE_S` hold for a streamer or daemon that does not measure (`unmeasured`, or no event).
A receiver that keeps its own clock (standalone HomePod) is followed by cliap2 instead: it is
ready once `tracking` (its anchors are translated onto its clock).
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from airplay_provider.protocol.ptp_readiness import STALL_S, ClockState, settled
from airplay_provider.protocol.streamer_status import ClockStatus, Connected
from airplay_provider.session.processes import StreamerProcess
from airplay_provider.session.timeline import ptp_settle_wait_s

#: A probing receiver is ready ~3.4 s after SETPEERS (field); a stall is reported after 5 s;
#: a receiver seen keeping its own clock then is followed, `tracking` ~2.5 s later.
CLOCK_WAIT_S: Final = STALL_S + 5.0
CLOCK_POLL_S: Final = 0.02
TIMING_CHOICES: Final = ("auto", "ptp", "ntp")


def timing_of(streamer: StreamerProcess) -> str | None:
    """`ptp` or `ntp` once the streamer connected (None before, and for RAOP)."""
    connected = streamer.last(Connected)
    return connected.timing if connected is not None else None


def clock_final(event: ClockStatus | None) -> bool:
    """Whether `event` ends the wait for a receiver's clock."""
    if event is None:
        return False
    try:
        return settled(ClockState(event.state))
    except ValueError:  # a state a newer streamer knows: not ours to wait on
        return True


async def wait_clock(
    streamer: StreamerProcess, timeout: float = CLOCK_WAIT_S
) -> ClockStatus | None:
    """The streamer's final `clock` event for its PTP receiver; None when it never says
    (an older streamer, or it exited) within `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        event = streamer.last(ClockStatus)
        if clock_final(event) or not streamer.running or loop.time() >= deadline:
            return event if clock_final(event) else None
        await asyncio.sleep(CLOCK_POLL_S)


async def hold_until_ready(
    streamer: StreamerProcess, *, measure: bool = True
) -> ClockStatus | None:
    """Hold a connected PTP member until its receiver follows our clock.

    Returns the final event (ready, stalled or unmeasured); without a measurement (or with
    `measure` False: it stalled before) the member is held `PTP_SETTLE_S` after `connected`
    (what shairport-sync 5 with nqptp needs).
    """
    if timing_of(streamer) != "ptp":
        return None
    event = await wait_clock(streamer) if measure else None
    if event is None or event.state == ClockState.UNMEASURED:
        wait = ptp_settle_wait_s("ptp", streamer.connected_at, time.monotonic())
        await asyncio.sleep(wait)
    return event


def clock_label(streamer: StreamerProcess | None) -> str | None:
    """`ptp ready`, `ptp probing`, `ptp stalled`, `ntp`, … for status and progress lines."""
    if streamer is None:
        return None
    timing = timing_of(streamer)
    if timing != "ptp":
        return timing
    event = streamer.last(ClockStatus)
    return f"ptp {event.state}" if event is not None else "ptp"


def describe_clock(name: str, event: ClockStatus) -> str:
    """A log line for a final clock event."""
    after = f" after {event.after_ms / 1000:.1f} s" if event.after_ms is not None else ""
    probes = f" ({event.probes} probes)" if event.probes else ""
    cause = f": {event.cause}" if event.cause else ""
    followed = ""
    if event.offset_us is not None and event.drift_ppb is not None:  # we follow its own clock
        drift = event.drift_ppb / 1000
        followed = f" (its own clock, {event.offset_us / 1e6:+.6f} s, {drift:+.1f} ppm)"
    return f"{name}: PTP clock {event.state}{after}{probes}{followed}{cause}"
