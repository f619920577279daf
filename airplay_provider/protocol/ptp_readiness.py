"""When an AirPlay 2 receiver follows our PTP clock, judged from what it sends us. Sans-I/O.

A receiver that has taken our grandmaster as its master shows it by talking back:

- a *probing* follower (Sonos, Samsung, HomePod, our emulator) sends Delay_Req to our port 319,
  ~1.1 s after SETPEERS on real devices, then ~8 per second; its servo needs ~2.3 s of probes
  before it schedules audio (Sonos; field figures in docs/protocol.md B.16);
- a *passive* follower (shairport-sync 5 with nqptp) never sends Delay_Req, but answers our
  Announce after each SETPEERS with two "awakening" Announces to our port 320; it follows
  ~1.2 s after SETPEERS (measured; audio due earlier is dropped as out of date). Only an
  awakening of this session counts: one from the last session says nothing about this one
  (with 319/320 blocked after a play, an old one made a silent receiver look ready).

nqptp's awakening Announce names a priority1 next to ours (ours - 1, then ours + 1); an
Announce with another priority (248: Sonos before it follows, a standalone HomePod on OS 27
that never does) offers the receiver's own clock and says nothing about following ours. A
receiver that sent only that (or Sync: a grandmaster itself) when `STALL_S` have passed keeps
its own clock: `own_clock`; cliap2 then follows that clock instead (`streamer.clock_follow`:
`locking`, `tracking`), or, when it cannot, the session handles it like a stall.
A receiver that sends nothing within `STALL_S` after SETPEERS is `stalled`: its timing packets
cannot reach us (UDP 319/320 blocked), or it advertises PTP and does not speak it (Sony TVs).
Times are CLOCK_MONOTONIC nanoseconds, the same in every process of the host.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from airplay_provider.protocol.ptp import GrandmasterDataset

NS: Final = 1_000_000_000
#: A probing follower is ready this long after its first Delay_Req (Sonos servo lock, field).
PROBE_LOCK_S: Final = 2.3
#: ... and once it has sent this many (a stray probe is no lock).
MIN_PROBES: Final = 4
#: A probing follower whose last Delay_Req is older than this has stopped following us.
PROBE_GAP_S: Final = 2.0
#: A passive follower (nqptp) that answered our Announce is ready this long after SETPEERS
#: (~1.2 s, measured) ...
PASSIVE_FOLLOW_S: Final = 1.5
#: ... and at least this long after its latest Announce.
AWAKENING_SETTLE_S: Final = 0.5
#: An Announce counts for this session if it came at most this long before `since` (SETPEERS
#: comes a few requests before cliap2's `connected`, when the watch starts).
FRESH_ANNOUNCE_S: Final = 2.0
#: No Delay_Req nor Announce this long after SETPEERS: the receiver is not following us.
STALL_S: Final = 5.0
STALL_CAUSE: Final = (
    "no PTP message from the receiver: UDP 319/320 blocked between us,"
    " or the device advertises PTP but does not speak it"
)
STOPPED_CAUSE: Final = "the receiver stopped sending Delay_Req: it no longer follows our clock"
OWN_CLOCK_CAUSE: Final = (
    "the receiver announces its own PTP clock and does not follow ours (a standalone HomePod?)"
)
#: Our Announce's priority1; nqptp's awakening is next to it.
OUR_PRIORITY1: Final = GrandmasterDataset().priority1


def is_awakening(priority1: int | None) -> bool:
    """Whether an Announce with this grandmaster priority1 is nqptp answering ours."""
    return priority1 is not None and abs(priority1 - OUR_PRIORITY1) <= 1


class ClockState(StrEnum):
    """A timing peer's relation to our clock."""

    COLD = "cold"  # nothing heard yet
    PROBING = "probing"  # Delay_Req coming in, servo still locking
    FOLLOWING = "following"  # passive follower heard, not settled yet
    READY = "ready"  # audio may be scheduled on our clock
    STALLED = "stalled"  # nothing heard within STALL_S
    OWN_CLOCK = "own_clock"  # it is a grandmaster itself (sends Sync), not our follower
    UNMEASURED = "unmeasured"  # the grandmaster does not report contacts (older daemon)
    LOCKING = "locking"  # it keeps its own clock; we follow it, not locked yet
    TRACKING = "tracking"  # we follow its clock: anchors are translated onto it


@dataclass
class PeerContact:
    """What the grandmaster heard from one timing peer (monotonic ns)."""

    delay_requests: int = 0
    announces: int = 0
    first_probe_ns: int | None = None
    last_probe_ns: int | None = None
    first_announce_ns: int | None = None
    last_announce_ns: int | None = None
    syncs: int = 0  # Sync messages it sent us: it offers its own clock
    foreign_announces: int = 0  # Announces of its own clock (not an awakening of ours)

    def heard_probe(self, now_ns: int) -> None:
        """A Delay_Req arrived."""
        self.delay_requests += 1
        if self.first_probe_ns is None:
            self.first_probe_ns = now_ns
        self.last_probe_ns = now_ns

    def heard_announce(self, now_ns: int, *, awakening: bool = True) -> None:
        """An Announce arrived: nqptp's awakening (priority1 next to ours), or not."""
        if not awakening:
            self.foreign_announces += 1
            return
        self.announces += 1
        if self.first_announce_ns is None:
            self.first_announce_ns = now_ns
        self.last_announce_ns = now_ns

    def heard_sync(self) -> None:
        """A Sync arrived from the receiver."""
        self.syncs += 1

    def to_wire(self) -> list[int | None]:
        """Compact JSON form for the daemon's answer."""
        return [
            self.delay_requests,
            self.announces,
            self.first_probe_ns,
            self.last_probe_ns,
            self.first_announce_ns,
            self.last_announce_ns,
            self.syncs,
            self.foreign_announces,
        ]

    @classmethod
    def from_wire(cls, value: object) -> PeerContact:
        """Inverse of `to_wire`; ValueError when malformed."""
        if not isinstance(value, list) or len(value) != 8:
            raise ValueError(f"bad peer contact {value!r}")
        counts = [int(item) for item in (*value[:2], *value[6:])]
        stamps = [None if item is None else int(item) for item in value[2:6]]
        contact = cls(counts[0], counts[1], stamps[0], stamps[1], stamps[2], stamps[3])
        contact.syncs, contact.foreign_announces = counts[2], counts[3]
        return contact


def merge(contacts: Iterable[PeerContact]) -> PeerContact:
    """One receiver heard on several of its addresses: counts add, first times are earliest."""
    out = PeerContact()

    def earliest(a: int | None, b: int | None) -> int | None:
        return b if a is None else a if b is None else min(a, b)

    for contact in contacts:
        out.delay_requests += contact.delay_requests
        out.announces += contact.announces
        out.syncs += contact.syncs
        out.foreign_announces += contact.foreign_announces
        out.first_probe_ns = earliest(out.first_probe_ns, contact.first_probe_ns)
        out.first_announce_ns = earliest(out.first_announce_ns, contact.first_announce_ns)
        if contact.last_probe_ns is not None:
            out.last_probe_ns = max(out.last_probe_ns or 0, contact.last_probe_ns)
        if contact.last_announce_ns is not None:
            out.last_announce_ns = max(out.last_announce_ns or 0, contact.last_announce_ns)
    return out


@dataclass(frozen=True)
class Readiness:
    """A peer's state now; `ready_at_ns` when it is (or will be) ready, if known."""

    state: ClockState
    ready_at_ns: int | None = None
    cause: str | None = None


def assess(
    contact: PeerContact,
    since_ns: int,
    now_ns: int,
    *,
    probe_lock_s: float = PROBE_LOCK_S,
    passive_follow_s: float = PASSIVE_FOLLOW_S,
    stall_s: float = STALL_S,
) -> Readiness:
    """The state of a peer given SETPEERS at `since_ns` and what it sent until `now_ns`."""
    if contact.first_probe_ns is not None:
        ready_at = contact.first_probe_ns + round(probe_lock_s * NS)
        silent_ns = now_ns - (contact.last_probe_ns or contact.first_probe_ns)
        if silent_ns >= round(stall_s * NS):
            return Readiness(ClockState.STALLED, cause=STOPPED_CAUSE)
        if (
            contact.delay_requests >= MIN_PROBES
            and now_ns >= ready_at
            and silent_ns <= round(PROBE_GAP_S * NS)
        ):
            return Readiness(ClockState.READY, ready_at)
        return Readiness(ClockState.PROBING, ready_at)
    fresh = since_ns - round(FRESH_ANNOUNCE_S * NS)
    if contact.last_announce_ns is not None and contact.last_announce_ns >= fresh:
        ready_at = max(
            since_ns + round(passive_follow_s * NS),
            contact.last_announce_ns + round(AWAKENING_SETTLE_S * NS),
        )
        state = ClockState.READY if now_ns >= ready_at else ClockState.FOLLOWING
        return Readiness(state, ready_at)
    if now_ns - since_ns >= round(stall_s * NS):
        if contact.syncs or contact.foreign_announces:
            return Readiness(ClockState.OWN_CLOCK, cause=OWN_CLOCK_CAUSE)
        return Readiness(ClockState.STALLED, cause=STALL_CAUSE)
    return Readiness(ClockState.COLD)


def settled(state: ClockState) -> bool:
    """Whether the state is final for a start (nothing more to wait for)."""
    return state in (
        ClockState.READY,
        ClockState.TRACKING,
        ClockState.STALLED,
        ClockState.OWN_CLOCK,
        ClockState.UNMEASURED,
    )
