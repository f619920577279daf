"""Sans-I/O PTP slave of the receiver emulator: follows a gPTP grandmaster, measures its offset.

Like devices it ignores plain IEEE 1588 messages (transportSpecific must be 1) and clocks that
are not in the session's timing-peer list, waits for an Announce from the master before
trusting it, then pairs Sync/Follow_Up (t1, t2) with its own Delay_Req/Delay_Resp (t3, t4):
offset(master - local) = ((t1 - t2) + (t4 - t3)) / 2, kept from the exchange with the shortest
round trip (`offset_at`: a line through the recent ones, for a clock with a rate error). Own
parsers; nothing is imported from ``airplay_provider``.

Field behaviours on request: `probe_after_s` delays the first Delay_Req (a receiver that is
slow to take our clock, as Sonos ~1 s after SETPEERS); `silent` never sends one (a TV that
advertises PTP and does not speak it, as Sony Bravia); `own_clock` never follows ours and
announces its own clock instead, priority1 248, once a second (a standalone HomePod on OS 27).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

SYNC, DELAY_REQ, FOLLOW_UP, DELAY_RESP, ANNOUNCE = 0x0, 0x1, 0x8, 0x9, 0xB
LOCK_SAMPLES = 4
LOCK_SPREAD_NS = 500_000
DELAY_REQ_INTERVAL_S = 0.125
FIT_SAMPLES = 128  # `offset_at`: the last 16 s of exchanges
OWN_PRIORITY1 = 248  # a HomePod's (and Sonos's) own clock


@dataclass(frozen=True)
class _Header:
    kind: int
    length: int
    clock: int
    port: int
    seq: int


def _header(data: bytes) -> _Header | None:
    if len(data) < 44 or data[0] >> 4 != 1 or data[1] & 0x0F != 2:
        return None  # not gPTP v2
    length = struct.unpack_from(">H", data, 2)[0]
    if length > len(data):
        return None
    clock, port, seq = struct.unpack_from(">QHH", data, 20)
    return _Header(data[0] & 0x0F, length, clock, port, seq)


def _timestamp(data: bytes, offset: int) -> int:
    high: int
    low: int
    nanos: int
    high, low, nanos = struct.unpack_from(">HIL", data, offset)
    return ((high << 32) | low) * 10**9 + nanos


@dataclass
class PtpSlave:
    """Feed it datagrams with local receive times; send what `poll` returns."""

    clock_id: int = 0x00EE_EEFF_FE00_0001
    probe_after_s: float = 0.0
    silent: bool = False
    own_clock: bool = False
    first_probe_local: int | None = None  # wall ns of the first Delay_Req sent
    followed: set[int] = field(default_factory=set)
    master: int | None = None
    master_address: str | None = None
    announces: int = 0
    syncs: int = 0
    ignored: int = 0
    first_sync_local: int | None = None
    locked_at_local: int | None = None
    offsets: list[tuple[int, int]] = field(default_factory=list)  # (round trip, master - local)
    offset_times: list[int] = field(default_factory=list)  # local ns of each `offsets` entry
    _t2: dict[int, int] = field(default_factory=dict)
    _last_pair: tuple[int, int] | None = None  # (t1, t2)
    _t3: dict[int, int] = field(default_factory=dict)
    _delay_seq: int = 0
    _next_delay_req: float = 0.0
    _probe_from: float | None = None
    _next_announce: float = 0.0
    _announce_seq: int = 0

    def follow(self, clock_ids: set[int]) -> None:
        """The timing peers named in SETUP: only these clocks may become our master."""
        self.followed |= clock_ids

    def event_received(self, data: bytes, address: str, local_ns: int) -> None:
        """A datagram on port 319 (Sync)."""
        header = _header(data)
        if header is None or header.kind != SYNC or not self._from_master(header, address):
            self.ignored += 1
            return
        self.syncs += 1
        if self.first_sync_local is None:
            self.first_sync_local = local_ns
        self._t2[header.seq] = local_ns
        if len(self._t2) > 64:
            self._t2.pop(next(iter(self._t2)))

    def general_received(self, data: bytes, address: str, local_ns: int) -> None:
        """A datagram on port 320 (Announce, Follow_Up, Delay_Resp)."""
        header = _header(data)
        if header is None:
            self.ignored += 1
            return
        if header.kind == ANNOUNCE and header.clock in self.followed and len(data) >= 64:
            grandmaster = struct.unpack_from(">Q", data, 53)[0]
            if grandmaster == header.clock:
                self.master, self.master_address = header.clock, address
                self.announces += 1
            return
        if not self._from_master(header, address):
            self.ignored += 1
            return
        if header.kind == FOLLOW_UP and header.seq in self._t2:
            self._last_pair = (_timestamp(data, 34), self._t2.pop(header.seq))
        elif header.kind == DELAY_RESP and len(data) >= 54:
            requesting = struct.unpack_from(">Q", data, 44)[0]
            t3 = self._t3.pop(header.seq, None)
            if requesting == self.clock_id and t3 is not None and self._last_pair is not None:
                self._sample(_timestamp(data, 34), t3, local_ns)

    def _from_master(self, header: _Header, address: str) -> bool:
        return header.clock == self.master and address == self.master_address

    def _sample(self, t4: int, t3: int, local_ns: int) -> None:
        assert self._last_pair is not None
        t1, t2 = self._last_pair
        round_trip = (t2 - t1) + (t4 - t3)
        self.offsets.append((round_trip, ((t1 - t2) + (t4 - t3)) // 2))
        self.offset_times.append(t3)
        recent = [offset for _, offset in self.offsets[-LOCK_SAMPLES:]]
        if (
            self.locked_at_local is None
            and len(recent) == LOCK_SAMPLES
            and max(recent) - min(recent) < LOCK_SPREAD_NS
        ):
            self.locked_at_local = local_ns

    @property
    def offset_ns(self) -> int | None:
        """master - local from the exchange with the shortest round trip (None before any)."""
        if not self.offsets:
            return None
        return min(self.offsets[-32:])[1]

    def offset_at(self, local_ns: int, window: int = FIT_SAMPLES) -> float | None:
        """master - local at `local_ns`, following a clock that runs at another rate (as a real
        receiver's servo does): a least-squares line through the better half (shortest round
        trips) of the last `window` exchanges. None before two exchanges."""
        recent = list(zip(self.offset_times[-window:], self.offsets[-window:], strict=True))
        if len(recent) < 2:
            return None if not recent else float(recent[0][1][1])
        best = sorted(recent, key=lambda item: item[1][0])[: max(2, len(recent) // 2)]
        times = [float(t - best[0][0]) for t, _ in best]
        values = [float(offset) for _, (_, offset) in best]
        mean_t, mean_v = sum(times) / len(times), sum(values) / len(values)
        spread = sum((t - mean_t) ** 2 for t in times)
        slope = (
            sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True)) / spread
            if spread
            else 0.0
        )
        return mean_v + slope * (local_ns - best[0][0] - mean_t)

    def poll(self, now: float, local_ns: int) -> bytes | None:
        """A Delay_Req to send now to the master's port 319 (stamped t3 = `local_ns`)."""
        if self.silent or self.own_clock or self._last_pair is None:
            return None
        if now < self._next_delay_req:
            return None
        if self._probe_from is None:
            self._probe_from = now + self.probe_after_s
        if now < self._probe_from:
            return None
        if self.first_probe_local is None:
            self.first_probe_local = local_ns
        self._next_delay_req = now + DELAY_REQ_INTERVAL_S
        self._delay_seq = (self._delay_seq + 1) & 0xFFFF
        self._t3[self._delay_seq] = local_ns
        header = struct.pack(
            ">BBHBBHq4sQHHBb", 0x11, 2, 44, 0, 0, 0x0400, 0, bytes(4), self.clock_id, 1,
            self._delay_seq, 1, 0x7F,
        )  # fmt: skip
        return header + bytes(10)

    def announce_own(self, now: float) -> bytes | None:
        """With `own_clock`: an Announce of our own clock for the sender's port 320, once a
        second once we know where the sender's grandmaster is."""
        if not self.own_clock or self.master_address is None or now < self._next_announce:
            return None
        self._next_announce = now + 1.0
        self._announce_seq = (self._announce_seq + 1) & 0xFFFF
        header = struct.pack(
            ">BBHBBHq4sQHHBb", 0x1B, 2, 64, 0, 0, 0x0408, 0, bytes(4), self.clock_id, 1,
            self._announce_seq, 5, 0,
        )  # fmt: skip
        body = struct.pack(
            ">10shBBBBHBQHB", bytes(10), 37, 0, OWN_PRIORITY1, 248, 0xFE, 0xFFFF, 248,
            self.clock_id, 0, 0xA0,
        )  # fmt: skip
        return header + body
