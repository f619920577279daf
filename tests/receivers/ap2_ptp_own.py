"""Sans-I/O PTP grandmaster of the emulator playing a standalone HomePod on OS 27.

Such a HomePod never follows a sender's clock (its `PtpSlave` has `own_clock`: no Delay_Req)
and keeps its own, free running: `OwnClock` is the emulator's local (wall) clock with an offset
of seconds and a drift (ppm), so a sender that does not really follow it is measurably wrong.
Field behaviour (music-assistant/airplay-cli#74, docs/protocol.md B.16): it announces its own
grandmaster (priority1 248) to the sender; once SETPEERS named the sender and the sender has
sent it no Sync for `QUIET_S` (it stopped offering its clock), it announces every 250 ms and
streams unicast two-step Sync/Follow_Up at 8 Hz to the sender's ports 319/320, and answers the
sender's Delay_Req with Delay_Resp (t4 on its own clock). Own encoders; nothing is imported
from ``airplay_provider``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

SYNC_INTERVAL_S = 0.125
ANNOUNCE_OFFERED_S = 1.0  # while the sender still offers its clock
ANNOUNCE_MASTER_S = 0.25  # once it is master
QUIET_S = 1.0  # no Sync from the sender this long: it stopped offering its clock
PRIORITY1 = 248
NS = 1_000_000_000


@dataclass(frozen=True)
class OwnClock:
    """own = local + offset_ns + drift_ppb * (local - epoch_ns) / 1e9 (local: wall ns)."""

    offset_ns: int
    drift_ppb: int
    epoch_ns: int

    def own(self, local_ns: int) -> int:
        """The HomePod's clock at local (wall) time `local_ns`."""
        return local_ns + self.offset_ns + self.drift_ppb * (local_ns - self.epoch_ns) // NS

    def local(self, own_ns: int) -> int:
        """The local (wall) time at which the HomePod's clock reads `own_ns`."""
        return self.epoch_ns + (own_ns - self.offset_ns - self.epoch_ns) * NS // (
            NS + self.drift_ppb
        )

    def to_wire(self) -> dict[str, int]:
        """For the runner's report."""
        return {"offset_ns": self.offset_ns, "drift_ppb": self.drift_ppb, "epoch_ns": self.epoch_ns}


def _timestamp(ns: int) -> bytes:
    seconds, nanos = divmod(ns, NS)
    return struct.pack(">HIL", (seconds >> 32) & 0xFFFF, seconds & 0xFFFFFFFF, nanos)


@dataclass
class OwnClockMaster:
    """Feed it what arrives on 319 (Sync from the sender, Delay_Req); send what `poll` gives."""

    clock_id: int
    clock: OwnClock
    sender: str | None = None  # the sender's address, once SETPEERS named it
    syncs_sent: int = 0
    delay_resps: int = 0
    mastering_since: float | None = None  # monotonic s when the Sync stream began
    _last_foreign_sync: float | None = None
    _seq: int = 0
    _announce_seq: int = 0
    _next_sync: float = 0.0
    _next_announce: float = 0.0
    _out: list[tuple[int, bytes]] = field(default_factory=list)

    def _header(
        self, kind: int, length: int, seq: int, flags: int, control: int, log: int
    ) -> bytes:
        return struct.pack(
            ">BBHBBHq4sQHHBb", 0x10 | kind, 2, length, 0, 0, flags, 0, bytes(4),
            self.clock_id, 1, seq & 0xFFFF, control, log,
        )  # fmt: skip

    def sync_seen(self, now: float) -> None:
        """A Sync from a foreign grandmaster (the sender offers its clock): ignored, noted."""
        self._last_foreign_sync = now

    def delay_req(self, data: bytes, address: str, local_ns: int) -> None:
        """A Delay_Req arrived on 319 at `local_ns`: answer it on the sender's port 320."""
        if not self.mastering or address != self.sender or len(data) < 44:
            return
        if data[0] >> 4 != 1 or data[0] & 0x0F != 0x1:
            return
        requester = data[20:30]  # clock identity + port number
        seq = struct.unpack_from(">H", data, 30)[0]
        body = _timestamp(self.clock.own(local_ns)) + requester
        self._out.append((320, self._header(0x9, 54, seq, 0x0408, 3, -3) + body))
        self.delay_resps += 1

    @property
    def mastering(self) -> bool:
        """Whether it streams its Sync (the sender stopped offering its clock)."""
        return self.mastering_since is not None

    def poll(self, now: float) -> list[tuple[int, bytes]]:
        """Datagrams for the sender now: (port, bytes); after a Sync (port 319) is sent, send
        `sync_sent`'s Follow_Up."""
        out, self._out = self._out, []
        if self.sender is None:
            return out
        quiet = self._last_foreign_sync is None or now - self._last_foreign_sync >= QUIET_S
        if quiet and self.mastering_since is None:
            self.mastering_since = now
            self._next_sync = now
        elif not quiet:
            self.mastering_since = None
        if now >= self._next_announce:
            self._next_announce = now + (
                ANNOUNCE_MASTER_S if self.mastering else ANNOUNCE_OFFERED_S
            )
            out.append((320, self._announce()))
        if self.mastering and now >= self._next_sync:
            self._next_sync = max(self._next_sync + SYNC_INTERVAL_S, now)
            self._seq += 1
            out.append((319, self._header(0x0, 44, self._seq, 0x0608, 0, -3) + bytes(10)))
            self.syncs_sent += 1
        return out

    def sync_sent(self, local_ns: int) -> bytes:
        """The Follow_Up of the Sync that left at `local_ns` (two-step: t1 on its clock, taken
        around the send as hardware would)."""
        t1 = self.clock.own(local_ns)
        return self._header(0x8, 44, self._seq, 0x0408, 2, -3) + _timestamp(t1)

    def _announce(self) -> bytes:
        self._announce_seq += 1
        header = self._header(0xB, 64, self._announce_seq, 0x0408, 5, 0)
        body = struct.pack(
            ">10shBBBBHBQHB", bytes(10), 37, 0, PRIORITY1, 248, 0xFE, 0xFFFF, 248,
            self.clock_id, 0, 0xA0,
        )  # fmt: skip
        return header + body
