"""The contract between the one streaming loop and a protocol's transport.

`StreamLoop` (streamer/stream_loop.py) owns what every protocol shares: input, the timeline and
pacer, sequence numbers, the backlog, pause/resume, drain and reports. A `Transport` owns what
differs per protocol: the RTSP session set-up and teardown, how a packet is sealed and sent,
sync packets, resends, and the flush/parameter requests. The transport sees its loop only
through `LoopView`; neither imports the other's module.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from airplay_provider.protocol.backlog import Backlog
    from airplay_provider.protocol.schedule import Timeline
    from airplay_provider.protocol.streamer_status import Connected, StreamerError
    from airplay_provider.streamer.clock import SenderClock
    from airplay_provider.streamer.raop_options import RaopOptions
    from airplay_provider.streamer.rtsp_client import RtspClient
    from airplay_provider.streamer.status import StatusWriter


@dataclass(frozen=True)
class Slot:
    """Where the next audio packet sits: its sequence number, first input sample, RTP time, and
    whether it opens a start or resume (marker bit, first sync)."""

    seq: int
    sample: int
    rtptime: int
    first: bool


@dataclass(frozen=True)
class Link:
    """A finished set-up: the log line and the `connected` event the loop reports."""

    log: str
    event: Connected


class LoopView(Protocol):
    """What a transport may read and do of the loop that drives it."""

    @property
    def opts(self) -> RaopOptions: ...

    @property
    def status(self) -> StatusWriter: ...

    @property
    def clock(self) -> SenderClock: ...

    @property
    def timeline(self) -> Timeline: ...

    @property
    def backlog(self) -> Backlog: ...

    @property
    def stats(self) -> dict[str, int]: ...

    @property
    def seq(self) -> int:
        """Sequence number of the next audio packet."""
        ...

    @property
    def next_sample(self) -> int:
        """First input sample of the next audio packet."""
        ...

    @property
    def started_at_mono(self) -> float:
        """Event-loop time of the last start or resume."""
        ...

    @property
    def stopping(self) -> bool: ...

    @property
    def paused(self) -> bool:
        """Paused by a command (until the resume)."""
        ...

    def alac_frame(self, pcm: bytes) -> bytes:
        """One ALAC frame of a packet's PCM: compressed with -alac, else uncompressed."""
        ...

    def place_start(self) -> None:
        """Fix the timeline's start (`-ntpstart`) once the session can take audio."""
        ...

    def replace_start(self) -> None:
        """Without `-ntpstart`: count the start from now again (before any packet left)."""
        ...

    def set_lead(self, lead_ms: int) -> None:
        """Send audio this far ahead of its play time (before the start is placed)."""
        ...

    def spawn(self, coro: Coroutine[object, object, None]) -> None:
        """Run a background task for the life of the stream."""
        ...

    def stop(self) -> None:
        """Leave the stream now."""
        ...

    def port_refused(self) -> None:
        """The receiver's audio port refused a packet (a sign it is gone)."""
        ...

    def fail(self, error: StreamerError) -> None:
        """A background step failed: end the stream with this error."""
        ...

    def receiver_gone(self, why: str) -> None:
        """The receiver is surely gone: stop with `receiver_gone`."""
        ...


class Transport(Protocol):
    """One protocol's side of a stream (RAOP, AirPlay 2 realtime or buffered)."""

    @property
    def rtsp(self) -> RtspClient | None:
        """The control connection while the session is up (watched, kept alive)."""
        ...

    @property
    def stream_type(self) -> str | None:
        """The AirPlay 2 stream type in use (`realtime`, `buffered`); None for RAOP."""
        ...

    async def connect(self) -> Link:
        """Set the session up; calls `LoopView.place_start` when the timeline can be fixed."""
        ...

    async def open_audio(self) -> None:
        """Open the audio path and wait (bounded) for the receiver to follow our clock."""
        ...

    async def started(self) -> None:
        """The start is placed and the loop is about to send (buffered: anchor playback)."""
        ...

    def send(self, pcm: bytes, slot: Slot) -> bytes:
        """Seal and send one packet of PCM (and a sync packet when due); the wire bytes."""
        ...

    def send_copy(self, wire: bytes) -> bool:
        """Send a packet's wire bytes once more (pacer.py, Copies); False when not sent (a
        reliable transport has nothing to heal)."""
        ...

    async def flush(self, slot: Slot) -> None:
        """Pause: the receiver drops everything from `slot` on."""
        ...

    def resumed(self) -> None:
        """The timeline was restarted after a pause (buffered: anchor it again)."""
        ...

    async def set_parameter(self, headers: dict[str, str], body: bytes) -> int | None:
        """SET_PARAMETER on the session; the answer's status (None: no session)."""
        ...

    def handle_command(self, key: str, value: str) -> bool:
        """A protocol-only FIFO command (AirPlay 2: `PIN=`); False if not ours."""
        ...

    async def teardown(self) -> bool:
        """TEARDOWN and close the session (bounded); False when there was none."""
        ...

    def close(self) -> None:
        """Release sockets and tasks (idempotent)."""
        ...
