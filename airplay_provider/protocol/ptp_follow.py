"""Following a receiver's own PTP clock (a standalone HomePod on OS 27): a slave servo, sans-I/O.

Some receivers never take our grandmaster; they announce their own clock and, once we stop
offering ours, stream two-step Sync/Follow_Up to us at ~8 Hz (docs/protocol.md B.16). We then
measure their clock against our PTP timeline like any PTP slave: their Sync leaves at t1 (their
clock) and arrives at t2 (ours); our Delay_Req leaves at t3 (ours) and arrives at t4 (theirs,
from the Delay_Resp). Each exchange gives the offset (theirs - ours) at our time (t2 + t3) / 2
and the round trip. `ClockFollower` keeps a window of them, trusts the quicker half (queueing
only ever adds delay), fits offset and rate by least squares, drops outliers, and restarts on a
step of the peer's clock. `Translation` is the result: `to_peer(our_ns)` and back, to put
anchors on the receiver's timeline. The fit's own error at the newest exchange (`error_ns`, a 99 %
bound from the kept exchanges' scatter) decides when it is good enough for audio (`locked`).
Everything is nanoseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import median
from typing import Final

NS: Final = 1_000_000_000
#: Exchanges older than this leave the fit (drift is steady over it; rate needs a span).
WINDOW_S: Final = 20.0
MAX_SAMPLES: Final = 256
#: Share of the window (quickest round trips) the fit uses.
KEEP_FRACTION: Final = 0.5
#: Usable once this many exchanges are in, over `RATE_SPAN_S` (a rate is known), ...
LOCK_SAMPLES: Final = 4
#: ... and the fitted offset is known to within this (`error_ns`): a quarter of a frame at
#: 44.1 kHz (22.7 µs). The buffered stream keeps the drift within ±0.5 frame of its anchors and
#: every anchor carries the fit's error on top, so that error must stay well under half a frame.
LOCK_ERROR_NS: Final = 5_000
#: ... from at least this many kept exchanges (the scatter of fewer says little).
LOCK_FIT_SAMPLES: Final = 6
#: A peer whose scatter never gets the error that low (Wi-Fi: ms of jitter) is used anyway once
#: its exchanges span this long (the streamer gives a lock 5 s, the first Sync may come 1 s late).
LOCK_ANYWAY_S: Final = 2.5
#: Two-sided 99 % Student t quantiles by degrees of freedom (n - 2 for a line through n points).
_T99: Final = {
    1: 63.66,
    2: 9.925,
    3: 5.841,
    4: 4.604,
    5: 4.032,
    6: 3.707,
    7: 3.499,
    8: 3.355,
    9: 3.250,
    10: 3.169,
    12: 3.055,
    15: 2.947,
    20: 2.845,
    30: 2.750,
    60: 2.660,
}
#: A rate is fitted only over at least this span; before, the offset is the median of the
#: newest `LOCK_SAMPLES` (a drift of 40 ppm moves it 1.8 frames a second).
RATE_SPAN_S: Final = 1.0
#: A quick exchange this far off the fit (or `STEP_SCATTERS` times the residuals' scatter, on a
#: noisier link) is set aside (an outlier) ...
STEP_NS: Final = 200_000
STEP_SCATTERS: Final = 8
#: ... unless this many in a row agree: a step of the peer's clock; start again from those.
STEP_COUNT: Final = 3
#: Round trips below this are inconsistent timestamps (a little below 0 is stamping noise).
MIN_ROUND_TRIP_NS: Final = -50_000
#: Residuals beyond max(this, 4 x their median) are outliers of the fit.
MIN_OUTLIER_NS: Final = 50_000


def keeps_own_clock(txt: Mapping[str, str]) -> bool:
    """Whether `_airplay` TXT says a standalone HomePod (OS 27 keeps its own clock): `igl=1`
    (it is its group's leader), no `pgid` (no parent group), no `tsid` (no stereo pair), on a
    HomePod model (`AudioAccessory…`) when the TXT names one (airplay-cli #74's rule)."""
    model = txt.get("model", "")
    if model and not model.startswith("AudioAccessory"):
        return False
    return txt.get("igl") == "1" and not txt.get("pgid") and not txt.get("tsid")


@dataclass(frozen=True)
class Exchange:
    """One Sync + Delay_Req round: t1, t4 on the peer's clock, t2, t3 on ours."""

    t1: int
    t2: int
    t3: int
    t4: int

    @property
    def at_ns(self) -> int:
        """Our time the offset belongs to."""
        return (self.t2 + self.t3) // 2

    @property
    def offset_ns(self) -> int:
        """Peer minus ours (exact when both directions take equally long)."""
        return ((self.t1 - self.t2) + (self.t4 - self.t3)) // 2

    @property
    def round_trip_ns(self) -> int:
        """Time on the wire both ways (their elapsed minus our turnaround)."""
        return (self.t4 - self.t1) - (self.t3 - self.t2)


@dataclass(frozen=True)
class Translation:
    """peer_ns = our_ns + offset_ns + rate_ppb * (our_ns - ref_ns) / 1e9."""

    ref_ns: int
    offset_ns: int
    rate_ppb: int = 0

    def to_peer(self, our_ns: int) -> int:
        """Our PTP time on the peer's clock."""
        return our_ns + self.offset_ns + (self.rate_ppb * (our_ns - self.ref_ns)) // NS

    def to_ours(self, peer_ns: int) -> int:
        """The peer's clock time on our PTP timeline (inverse of `to_peer`)."""
        return self.ref_ns + (peer_ns - self.offset_ns - self.ref_ns) * NS // (NS + self.rate_ppb)

    def to_wire(self) -> list[int]:
        """Compact JSON form (the daemon's answer)."""
        return [self.ref_ns, self.offset_ns, self.rate_ppb]

    @classmethod
    def from_wire(cls, value: object) -> Translation:
        """Inverse of `to_wire`; ValueError when malformed."""
        if not isinstance(value, list) or len(value) != 3:
            raise ValueError(f"bad translation {value!r}")
        ref, offset, rate = (int(item) for item in value)
        return cls(ref, offset, rate)


@dataclass
class ClockFollower:
    """Estimates a peer clock from exchanges; feed it messages or whole `Exchange`s."""

    window_s: float = WINDOW_S
    translation: Translation | None = None
    samples: list[Exchange] = field(default_factory=list)
    used: int = 0  # exchanges in the current fit
    error_ns: int | None = None  # 99 % bound of the fitted offset's error at its reference
    _locked: bool = False  # once good enough it stays so (until the peer's clock steps)
    _scatter_ns: int = 0  # the link's: kept exchanges around the last fit of enough of them
    outliers: int = 0
    steps: int = 0
    _suspects: list[Exchange] = field(default_factory=list)
    _sync_arrivals: dict[int, int] = field(default_factory=dict)  # seq -> t2
    _origins: dict[int, int] = field(default_factory=dict)  # seq -> t1 (Follow_Up came first)
    _last_pair: tuple[int, int] | None = None  # (t1, t2) of the latest Sync
    _requests: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # seq -> t1, t2, t3

    # ---- messages -------------------------------------------------------------------------

    def sync(self, sequence_id: int, arrived_ns: int) -> bool:
        """The peer's Sync arrived at `arrived_ns` (our time, t2); whether that completes a
        (t1, t2) pair (its Follow_Up may be read first: they come on two sockets)."""
        origin = self._origins.pop(sequence_id, None)
        if origin is not None:
            self._last_pair = (origin, arrived_ns)
            return True
        _remember(self._sync_arrivals, sequence_id, arrived_ns)
        return False

    def follow_up(self, sequence_id: int, origin_ns: int) -> bool:
        """The Follow_Up with the precise departure time (t1) of Sync `sequence_id`; whether
        that completes a pair."""
        arrived = self._sync_arrivals.pop(sequence_id, None)
        if arrived is not None:
            self._last_pair = (origin_ns, arrived)
            return True
        _remember(self._origins, sequence_id, origin_ns)
        return False

    def delay_req_sent(self, sequence_id: int, sent_ns: int) -> bool:
        """Our Delay_Req left at `sent_ns` (t3); False (not counted) before any Sync pair."""
        if self._last_pair is None:
            return False
        self._requests[sequence_id] = (*self._last_pair, sent_ns)
        while len(self._requests) > 16:
            self._requests.pop(next(iter(self._requests)))
        return True

    def delay_resp(self, sequence_id: int, received_ns: int) -> bool:
        """The peer's Delay_Resp: our request `sequence_id` arrived at `received_ns` (t4)."""
        request = self._requests.pop(sequence_id, None)
        if request is None:
            return False
        self.add(Exchange(*request, received_ns))
        return True

    # ---- the fit --------------------------------------------------------------------------

    @property
    def locked(self) -> bool:
        """Whether the translation may be used for audio: enough exchanges, over a span that
        gives the rate (without it, 40 ppm put a frame's error in half a second), and a fit
        whose error is measured below `LOCK_ERROR_NS` -- or, failing that, `LOCK_ANYWAY_S` of
        exchanges. Once locked it stays so: a later noisy stretch only widens `error_ns`."""
        return self._locked

    def _has_rate(self) -> bool:
        """Enough exchanges over a span for a rate: a fit that can tell outliers and steps."""
        if self.translation is None or len(self.samples) < LOCK_SAMPLES:
            return False
        return self.samples[-1].at_ns - self.samples[0].at_ns >= RATE_SPAN_S * NS

    def _good_enough(self) -> bool:
        """A fit for audio: a rate and a measured error below the bound, or a long span."""
        if not self._has_rate():
            return False
        measured = self.error_ns is not None and self.error_ns <= LOCK_ERROR_NS
        measured = measured and self.used >= LOCK_FIT_SAMPLES
        return measured or self.samples[-1].at_ns - self.samples[0].at_ns >= LOCK_ANYWAY_S * NS

    def to_peer(self, our_ns: int) -> int:
        """Our time on the peer's clock; ValueError before the first exchange."""
        if self.translation is None:
            raise ValueError("no exchange with the peer yet")
        return self.translation.to_peer(our_ns)

    def add(self, exchange: Exchange) -> None:
        """One more exchange; refits."""
        if exchange.round_trip_ns < MIN_ROUND_TRIP_NS:
            self.outliers += 1  # impossible timestamps
            return
        current = self.translation
        if current is not None and self._has_rate():
            error = abs(exchange.offset_ns - (current.to_peer(exchange.at_ns) - exchange.at_ns))
            quick = exchange.round_trip_ns <= self._round_trip_limit()
            if quick and error > max(STEP_NS, STEP_SCATTERS * self._scatter_ns):
                self._suspects.append(exchange)
                if len(self._suspects) < STEP_COUNT:
                    self.outliers += 1
                    return
                self.steps += 1  # the peer's clock stepped: only the new exchanges count
                self.samples = list(self._suspects)
                self._locked = False
                self._suspects.clear()
                self._refit()
                return  # (not locked: too few exchanges of the new clock)
            if quick:
                self._suspects.clear()
        self.samples.append(exchange)
        horizon = exchange.at_ns - round(self.window_s * NS)
        self.samples = [s for s in self.samples if s.at_ns >= horizon][-MAX_SAMPLES:]
        self._refit()
        self._locked = self._locked or self._good_enough()

    def _round_trip_limit(self) -> int:
        trips = sorted(s.round_trip_ns for s in self.samples)
        if not trips:
            return 0
        return trips[max(0, min(len(trips) - 1, round(len(trips) * KEEP_FRACTION) - 1))]

    def _refit(self) -> None:
        self.error_ns = None
        if not self.samples:
            self.translation, self.used = None, 0
            return
        if (self.samples[-1].at_ns - self.samples[0].at_ns) / NS < RATE_SPAN_S:
            newest = self.samples[-LOCK_SAMPLES:]  # no rate yet: older offsets have drifted
            offset = round(median(s.offset_ns for s in newest))
            self.translation, self.used = Translation(newest[-1].at_ns, offset), len(newest)
            return
        limit = self._round_trip_limit()
        chosen = [s for s in self.samples if s.round_trip_ns <= limit]
        fit = _fit(chosen)
        residuals = [abs(s.offset_ns - (fit.to_peer(s.at_ns) - s.at_ns)) for s in chosen]
        bound = max(MIN_OUTLIER_NS, 4 * median(residuals))
        kept = [s for s, r in zip(chosen, residuals, strict=True) if r <= bound]
        if len(kept) < len(chosen):
            self.outliers += len(chosen) - len(kept)
            fit = _fit(kept)
        self.translation, self.used = fit, len(kept)
        self.error_ns, scatter = _fit_error(kept, fit)
        if len(kept) >= LOCK_FIT_SAMPLES or scatter > self._scatter_ns:  # (fewer say little:
            self._scatter_ns = scatter  # after a step, the link stays as noisy as it was)


def _remember(table: dict[int, int], key: int, value: int) -> None:
    table[key] = value
    while len(table) > 16:
        table.pop(next(iter(table)))


def _fit(samples: list[Exchange]) -> Translation:
    """Least-squares offset (at the newest sample) and rate (none over too short a span)."""
    ref = samples[-1].at_ns
    base = samples[-1].offset_ns
    xs = [(s.at_ns - ref) / NS for s in samples]  # seconds, <= 0
    ys = [float(s.offset_ns - base) for s in samples]  # ns around the newest offset
    if len(samples) < 2 or max(xs) - min(xs) < RATE_SPAN_S / 2:  # too close for a rate
        return Translation(ref, base + round(median(ys)))
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx  # ns/s
    at_ref = mean_y + slope * (0.0 - mean_x)
    return Translation(ref, base + round(at_ref), round(slope))


def _fit_error(samples: list[Exchange], fit: Translation) -> tuple[int | None, int]:
    """99 % bound of the fitted offset's error at its reference (the newest exchange): the
    standard error of the line there (the offset's and the rate's share, from the residuals'
    scatter) times Student's t; None without a rate or the points to judge it. And the
    residuals' scatter (standard deviation)."""
    free = len(samples) - 2
    xs = [(s.at_ns - fit.ref_ns) / NS for s in samples]
    if free < 1 or max(xs) - min(xs) < RATE_SPAN_S / 2:  # `_fit` gave no rate
        return None, 0
    residuals = [s.offset_ns - (fit.to_peer(s.at_ns) - s.at_ns) for s in samples]
    variance = sum(r * r for r in residuals) / free
    mean_x = sum(xs) / len(xs)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    spread = (variance * (1 / len(xs) + mean_x**2 / sxx)) ** 0.5
    quantile = _T99[max(dof for dof in _T99 if dof <= free)] if free < 120 else 2.576
    return round(quantile * spread), round(variance**0.5)


@dataclass(frozen=True)
class PeerClockReport:
    """What the grandmaster daemon tells a streamer about a receiver clock it follows."""

    clock_id: int | None  # the receiver's PTP clock identity (its anchors' timeline id)
    exchanges: int  # Delay_Req/Delay_Resp rounds completed
    locked: bool
    translation: Translation | None
    error_ns: int | None = None  # the fit's 99 % error bound (`ClockFollower.error_ns`)

    def to_wire(self) -> list[object]:
        """Compact JSON form."""
        wire = None if self.translation is None else self.translation.to_wire()
        return [self.clock_id, self.exchanges, self.locked, wire, self.error_ns]

    @classmethod
    def from_wire(cls, value: object) -> PeerClockReport:
        """Inverse of `to_wire` (a daemon before `error_ns` sends four items); ValueError when
        malformed."""
        if not isinstance(value, list) or len(value) not in (4, 5):
            raise ValueError(f"bad peer clock report {value!r}")
        clock, exchanges, locked, wire, *rest = value
        error = rest[0] if rest else None
        return cls(
            None if clock is None else int(clock),
            int(exchanges),
            bool(locked),
            None if wire is None else Translation.from_wire(wire),
            None if error is None else int(error),
        )

    @classmethod
    def of(cls, follower: ClockFollower, clock_id: int | None) -> PeerClockReport:
        """The report of a follower's current state."""
        exchanges = len(follower.samples)
        return cls(clock_id, exchanges, follower.locked, follower.translation, follower.error_ns)
