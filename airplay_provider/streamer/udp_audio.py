"""The realtime UDP audio path RAOP and AirPlay 2 realtime share.

Our NTP timing responder, the control socket (sync packets out, resend requests in, answered
from the loop's backlog) and the connected audio socket. The protocol decides what a sync packet
looks like; this decides when one is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

from airplay_provider.protocol.rtp import resend_reply
from airplay_provider.protocol.streamer_status import ErrorCode, StreamerError
from airplay_provider.streamer.transport import LoopView
from airplay_provider.streamer.udp_services import (
    Address,
    AudioSender,
    ControlChannel,
    TimingResponder,
    open_udp_socket,
)

TIMING_WAIT_S = 0.4  # how long to wait for the receiver's first timing request at start


def family_of(address: str) -> int:
    """The socket family for a peer address."""
    return socket.AF_INET6 if ":" in address else socket.AF_INET


class UdpAudioPath:
    """Timing responder, control channel and audio socket of one realtime stream."""

    def __init__(self, loop: LoopView) -> None:
        self.loop = loop
        self.timing: TimingResponder | None = None
        self.control: ControlChannel | None = None
        self.audio: AudioSender | None = None
        self.audio_addr: Address | None = None
        self.control_addr: Address | None = None
        self.last_sync_mono = 0.0
        #: Sync packets once started: 1/s; more often to a receiver whose own (drifting) clock
        #: we follow, as each anchors its timeline afresh (`airplay2`).
        self.steady_sync_s = 1.0

    def open_timing(self, family: int) -> TimingResponder:
        """Our NTP timing port (answers 0xD2 requests from the loop's clock)."""
        self.timing = TimingResponder(
            open_udp_socket(family, self.loop.opts.bind_address), self.loop.clock
        )
        return self.timing

    def open_control(self, family: int) -> ControlChannel:
        """Our control port: sync packets leave by it, resend requests arrive on it."""
        self.control = ControlChannel(
            open_udp_socket(family, self.loop.opts.bind_address), self.on_resend
        )
        return self.control

    async def open_audio(self) -> None:
        """Connect the audio socket; wait (bounded) for the receiver's first timing request."""
        assert self.timing is not None
        assert self.audio_addr is not None
        family = family_of(self.audio_addr[0])
        try:
            self.audio = AudioSender(
                open_udp_socket(family, self.loop.opts.bind_address),
                self.audio_addr,
                self.loop.port_refused,
            )
        except OSError as exc:
            raise StreamerError(ErrorCode.OS_ERROR, f"audio socket: {exc}") from exc
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.timing.answered.wait(), TIMING_WAIT_S)

    def send(self, wire: bytes, *, first: bool, sync: Callable[[], bytes]) -> None:
        """Send an audio packet, after a sync packet (built by `sync`) when one is due."""
        assert self.audio is not None
        loop_now = asyncio.get_running_loop().time()
        if first or loop_now - self.last_sync_mono >= self._sync_interval(loop_now):
            assert self.control is not None
            assert self.control_addr is not None
            self.control.endpoint.send(sync(), self.control_addr)
            self.last_sync_mono = loop_now
        if not self.audio.send(wire):
            self.loop.stats["send_errors"] += 1

    def send_copy(self, wire: bytes) -> bool:
        """A plain duplicate on the audio port: in order behind the original, read by the same
        receiver thread (a resend reply on the control port could overtake packets not yet
        read and make the receiver start at the copy)."""
        assert self.audio is not None
        return self.audio.send(wire)

    def _sync_interval(self, loop_now: float) -> float:
        # A receiver ignores sync packets until it has measured our clock (shairport-sync:
        # "Sync packet received before we got a timing packet back"), and judges the first
        # packet late if the anchor comes too late: so sync often while starting, then 1/s.
        return 0.04 if loop_now - self.loop.started_at_mono < 0.6 else self.steady_sync_s

    def on_resend(self, first_seq: int, count: int, addr: Address) -> None:
        """Answer a receiver's resend request from the backlog (A.12)."""
        assert self.control is not None
        loop = self.loop
        for offset in range(min(count, loop.backlog.capacity)):
            seq = (first_seq + offset) & 0xFFFF
            entry = loop.backlog.get(seq)
            if entry is None:
                loop.stats["lost"] += 1
                loop.status.log(f"lost packet out of backlog: {seq}", level=4)
                continue
            if self.control.endpoint.send(resend_reply(entry.wire), addr):
                loop.stats["resent"] += 1

    def close(self) -> None:
        """Close every socket (idempotent)."""
        if self.timing is not None:
            self.timing.endpoint.close()
        if self.control is not None:
            self.control.endpoint.close()
        if self.audio is not None:
            self.audio.close()
