"""The grandmaster daemon's side of following receivers that keep their own clock.

A receiver named for following (a standalone HomePod on OS 27) gets no Sync or Announce from
us, so it becomes master and streams Sync/Follow_Up to our ports 319/320. For each Follow_Up we
answer with a Delay_Req; its Delay_Resp closes an exchange for the receiver's `ClockFollower`
(`protocol.ptp_follow`). The daemon owns 319/320, so this runs inside it; streamers read the
result (`PeerClockReport`) over the daemon's socket like the readiness contacts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from airplay_provider.protocol import ptp
from airplay_provider.protocol.ptp_follow import ClockFollower, PeerClockReport

#: send(datagram, address) on the event socket (port 319); returns our departure time (PTP ns).
SendEvent = Callable[[bytes, str], int]


@dataclass
class _Followed:
    follower: ClockFollower = field(default_factory=ClockFollower)
    clock_id: int | None = None
    delay_seq: int = 0


class Followers:
    """Per followed address: the servo, fed from the grandmaster's sockets."""

    def __init__(self, identity: ptp.PortIdentity) -> None:
        self.identity = identity
        self.peers: dict[str, _Followed] = {}

    def follow(self, address: str) -> None:
        """Start following `address`'s clock (idempotent)."""
        self.peers.setdefault(address, _Followed())

    def forget(self, address: str) -> None:
        """Stop following `address`."""
        self.peers.pop(address, None)

    def __contains__(self, address: object) -> bool:
        return address in self.peers

    def received(
        self, address: str, message: ptp.PtpMessage, arrived_ns: int, send_event: SendEvent
    ) -> None:
        """A message from a followed receiver arrived at `arrived_ns` (our PTP time)."""
        followed = self.peers.get(address)
        if followed is None:
            return
        kind = message.message_type
        if kind is ptp.MessageType.SYNC:
            if followed.clock_id != message.source.clock_id:  # a new (or first) master clock
                followed.follower = ClockFollower()
                followed.clock_id = message.source.clock_id
            if followed.follower.sync(message.sequence_id, arrived_ns):
                self._probe(address, followed, send_event)
        elif message.source.clock_id != followed.clock_id:
            return
        elif kind is ptp.MessageType.FOLLOW_UP and message.timestamp_ns is not None:
            if followed.follower.follow_up(message.sequence_id, message.timestamp_ns):
                self._probe(address, followed, send_event)
        elif (
            kind is ptp.MessageType.DELAY_RESP
            and message.timestamp_ns is not None
            and message.requesting == self.identity
        ):
            followed.follower.delay_resp(message.sequence_id, message.timestamp_ns)

    def _probe(self, address: str, followed: _Followed, send_event: SendEvent) -> None:
        """Our Delay_Req after each completed Sync/Follow_Up pair."""
        followed.delay_seq = (followed.delay_seq + 1) & 0xFFFF
        request = ptp.encode_delay_req(self.identity, followed.delay_seq)
        sent = send_event(request, address)
        followed.follower.delay_req_sent(followed.delay_seq, sent)

    def report(self, address: str) -> PeerClockReport | None:
        """The state of `address`'s clock, None when it is not followed."""
        followed = self.peers.get(address)
        if followed is None:
            return None
        return PeerClockReport.of(followed.follower, followed.clock_id)
