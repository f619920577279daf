"""The one streaming loop: stdin to a receiver through the protocol's `Transport`.

Time flows through one `Timeline` (protocol/schedule.py): input sample k is audible at `ntpstart
+ k/rate` (rate: the stream's `PcmFormat`, 44100 or 48000). Which packet leaves when (pre-roll,
the paced build-up of the lead, skip-late, underruns) is decided by the `Pacer`
(streamer/pacer.py, no I/O); this class carries its decisions out: reads input, hands packets to
the transport, sleeps, pauses and resumes, drains, reports. What differs between RAOP and
AirPlay 2 lives in the transport (streamer/transport.py).
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Coroutine

from airplay_provider.protocol.alac_encoder import AlacEncoder, encode_escape
from airplay_provider.protocol.backlog import Backlog, SentPacket
from airplay_provider.protocol.liveness import ReceiverWatch
from airplay_provider.protocol.schedule import Timeline
from airplay_provider.protocol.streamer_status import (
    Eof,
    Error,
    ErrorCode,
    Exit,
    Paused,
    Stats,
    Stopped,
    StreamerError,
)
from airplay_provider.protocol.timing import (
    FRAMES_PER_PACKET,
    ns_to_frames,
    ntp_add_frames,
)
from airplay_provider.streamer.clock import SenderClock
from airplay_provider.streamer.loop_reports import LoopReports
from airplay_provider.streamer.pacer import (
    InputDone,
    Pacer,
    PacketKind,
    Phase,
    Send,
    Skip,
    Wait,
)
from airplay_provider.streamer.pcm_input import PcmInput
from airplay_provider.streamer.raop_commands import RaopCommandHandler
from airplay_provider.streamer.raop_options import RaopOptions
from airplay_provider.streamer.status import JitterStats, StatusWriter
from airplay_provider.streamer.transport import LoopView, Slot, Transport

WAKE_EARLY_S = 0.001
MAX_PACKETS_PER_WAKE = 512  # bounded work per wake-up (about 4 s of audio)
DRAIN_TAIL_NS = 250_000_000  # after the last frame's play time, before TEARDOWN
# The RTSP connection is checked for a receiver gone at every wake-up of the pacing loop (no
# timer of its own: ~14 a second while streaming); no sleep lasts longer than this, so a pause or
# a far start still notices within it.
WATCH_EVERY_S = 0.25
# A copy (pacer.py, Copies) leaves behind the packet this many after its original: at least two
# datagrams lie between them, so a loss of up to three datagrams in a row spares one of them.
COPY_AFTER_PACKETS = 2

#: Builds a stream's transport around the loop that will drive it.
TransportFactory = Callable[[LoopView], Transport]


class StreamLoop(LoopReports):
    """One stream from stdin to one receiver; the protocol is the transport it is given."""

    def __init__(
        self,
        options: RaopOptions,
        status: StatusWriter,
        transport: TransportFactory,
        *,
        clock: SenderClock | None = None,
        input_fd: int = 0,
    ) -> None:
        self.opts = options
        self.status = status
        self.clock = clock or SenderClock()
        self.pcm = pcm = options.pcm
        # up to 4 s of input buffered ahead (backpressure beyond it)
        self.input = PcmInput(input_fd, pcm.bytes_per_frame, max_buffer_frames=pcm.rate * 4)
        self._silent_packet = bytes(pcm.packet_bytes)
        latency_frames = ns_to_frames(options.latency_ms * 1_000_000, pcm.rate)
        self.timeline = Timeline(
            start_ntp=options.ntpstart or 0,
            first_rtp=random.getrandbits(32),
            latency_frames=latency_frames,
            rate=pcm.rate,
        )
        self.seq = random.getrandbits(16)
        self.backlog = Backlog(1024, frame_bytes=pcm.bytes_per_frame)
        self.watch = ReceiverWatch()
        self.gone: str | None = None  # why the receiver is surely gone (protocol/liveness.py)
        self.failure: StreamerError | None = None  # a background step's fatal error
        self.pacer = Pacer(self.timeline, self.clock)
        self.started_at_mono = 0.0
        self.stopping = False
        self._waiter: asyncio.Future[None] | None = None
        self._waiting_for_input = False
        self._resume_rtp = 0
        self._input_end: int | None = None  # the sample after the last input sample, once known
        self._copies: deque[tuple[int, bytes]] = deque()  # (packet number, wire) to send again
        self.input.on_change = self._on_input
        self.stats = {
            "sent": 0,
            "resent": 0,
            "late": 0,
            "underruns": 0,
            "lost": 0,
            "send_errors": 0,
            "copies": 0,
            "compressed": 0,
            "payload_bytes": 0,
        }
        #: -alac: compressed ALAC frames (sent uncompressed when that is not smaller)
        self.alac = AlacEncoder(bits=pcm.bits) if options.alac else None
        self.commands = RaopCommandHandler(self, rate=pcm.rate)
        self.jitter = JitterStats()
        self._tasks: set[asyncio.Task[None]] = set()
        self.transport = transport(self)

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self) -> int:
        """Connect, stream until end of input (or STOP), drain, tear down. Returns exit code."""
        try:
            await self.connect()
            self.input.start()
            await self.stream()
            await self.teardown()
        except StreamerError as exc:  # RtspClientError included
            self.status.log(f"error: {exc}", level=1)
            self.status.emit(Error(exc.code, str(exc)))
            await self.teardown(quiet=True)
            return 2 if exc.code == ErrorCode.USAGE else 1
        finally:
            self.close()
        self.status.emit(Stats(**self.stats, **self.jitter.summary()))
        self.status.log("end of stream reached")
        self.status.emit(Exit(0))
        return 0

    def close(self) -> None:
        """Release every socket, reader and task (idempotent)."""
        for task in list(self._tasks):
            task.cancel()
        self.input.close()
        self.commands.close()
        self.transport.close()

    def spawn(self, coro: Coroutine[object, object, None]) -> None:
        """Run a background coroutine, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def connect(self) -> None:
        """The transport's set-up, the initial volume, then `[STATUS] connected`."""
        link = await self.transport.connect()
        if self.opts.volume is not None:
            await self.commands.send_volume(self.opts.volume)
        self.status.log(link.log)
        self.status.emit(link.event)

    def place_start(self) -> None:
        """Put sample 0 at `-ntpstart` (skipping what is too late) behind a silent pre-roll."""
        first_real = self.pacer.place_start(self.opts.ntpstart)
        skipped = self.input.skip_to(first_real)
        if skipped:
            self.stats["late"] += skipped

    def replace_start(self) -> None:
        """Without `-ntpstart`: count the start from now again (before any packet left)."""
        if self.opts.ntpstart is None:
            self.pacer.place_start(None)

    def set_lead(self, lead_ms: int) -> None:
        """Send audio `lead_ms` ahead of its play time (only before the start is placed)."""
        if self.pacer.phase is not Phase.CONNECTING:
            raise RuntimeError("the lead is fixed once the start is placed")
        self.timeline.latency_frames = ns_to_frames(lead_ms * 1_000_000, self.pcm.rate)
        self.pacer = Pacer(self.timeline, self.clock)

    @property
    def next_sample(self) -> int:
        """The first input sample of the next packet."""
        return self.pacer.next_sample

    @property
    def paused(self) -> bool:
        """Paused by a command (until the resume)."""
        return self.pacer.phase is Phase.PAUSED

    # ---- the pacing loop ---------------------------------------------------------------------

    async def stream(self) -> None:
        """Send audio until end of input (then drain) or STOP."""
        await self.transport.open_audio()
        if self.opts.ntpstart is None:
            self.pacer.place_start(None)  # sample 0 counts from now, after the timing wait
        await self.transport.started()
        loop = asyncio.get_running_loop()
        self.started_at_mono = loop.time()
        self.watch.restarted(self.started_at_mono)
        self.spawn(self._periodic())
        while await self._send_input():
            self._input_end = self.next_sample
            self.status.emit(Eof(self.next_sample))
            await self._drain()
            if self.stopping or self.pacer.phase is Phase.DRAINING:
                break
            # Paused while the tail played: the unplayed input is back in front of the input;
            # it is sent after the resume, then the tail drains again.
        if self.failure is not None:
            raise self.failure
        if self.gone is not None:
            raise StreamerError(ErrorCode.RECEIVER_GONE, self.gone)

    async def _send_input(self) -> bool:
        """Send input as the pacer says until it all left (True) or STOP / receiver gone
        (False); waits out a pause."""
        loop = asyncio.get_running_loop()
        while not self.stopping:
            if self._watch_rtsp():
                return False
            if self.paused:
                await self._sleep(WATCH_EVERY_S)
                continue
            wait = self._send_due_packets()
            if wait is None:
                continue  # interrupted, or the per-wake bound reached
            if isinstance(wait, InputDone):
                if self.input.total_bytes == 0:
                    raise StreamerError(ErrorCode.EMPTY_INPUT, "no audio arrived on stdin")
                return True
            delay = max(0.0, self.clock.seconds_until(wait.until_ntp))
            planned = loop.time() + delay
            # The event loop's poll timeout has 1 ms granularity and rounds up; ask for the wake
            # that much early (packets may leave up to SEND_WINDOW_NS early anyway).
            sleep_s = max(0.0, delay - WAKE_EARLY_S)
            if sleep_s > WATCH_EVERY_S:  # wake for the RTSP watch; the pacer decides again
                await self._sleep(WATCH_EVERY_S, wake_on_input=wait.wake_on_input)
                continue
            await self._sleep(sleep_s, wake_on_input=wait.wake_on_input)
            if not wait.wake_on_input and not self._interrupted():
                self.jitter.add(loop.time() - planned)
        return False

    # ---- a receiver gone (protocol/liveness.py decides) ----------------------------------------

    def _watch_rtsp(self) -> bool:
        """Between requests, a closed or reset RTSP connection means the receiver is gone (then
        True: the stream stops). Called at every wake-up of the pacing loop and the drain (a few
        attribute reads)."""
        rtsp = self.transport.rtsp
        lost = rtsp.lost() if rtsp is not None and not self.stopping else None
        if lost is None:
            return False
        self.receiver_gone(self.watch.rtsp_lost(reset=lost == "reset"))
        return True

    def port_refused(self) -> None:
        """ICMP port unreachable for our audio."""
        if self.stopping:
            return
        verdict = self.watch.port_refused(asyncio.get_running_loop().time())
        if verdict is not None:
            self.receiver_gone(verdict)

    def fail(self, error: StreamerError) -> None:
        """End the stream with `error` (the first one wins)."""
        if self.failure is None and not self.stopping:
            self.failure = error
            self.stop()

    def receiver_gone(self, why: str) -> None:
        """Stop with `receiver_gone` (the first reason wins)."""
        if self.gone is None and not self.stopping:
            self.gone = why
            self.status.log(why, level=1)
            self.stop()

    def _interrupted(self) -> bool:
        """True when a command paused or stopped the stream meanwhile."""
        return self.stopping or self.paused

    async def _sleep(self, delay: float | None, *, wake_on_input: bool = False) -> None:
        """Sleep `delay` seconds (None: until woken); commands always wake us.

        One future and one timer per wait: this runs ~14 times a second, so it stays cheap.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        self._waiting_for_input = wake_on_input
        timer = loop.call_later(delay, _resolve, waiter) if delay is not None else None
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None

    def _wake(self) -> None:
        """Wake the pacing loop now (command, stop)."""
        if self._waiter is not None:
            _resolve(self._waiter)

    def _on_input(self) -> None:
        if self._waiting_for_input:
            self._wake()

    def _send_due_packets(self) -> Wait | InputDone | None:
        """Carry out the pacer's decisions until it says wait (None: interrupted or bounded)."""
        pacer, source = self.pacer, self.input
        for _ in range(MAX_PACKETS_PER_WAKE):
            if self.stopping or self.paused:
                return None
            available = source.available_samples
            action = pacer.next_action(available, source.eof)
            if isinstance(action, Send):
                if action.kind is PacketKind.AUDIO:
                    pcm = source.take(FRAMES_PER_PACKET)
                elif action.kind is PacketKind.UNDERRUN:
                    # Keep the receiver fed with silence for this slot; the input for it is
                    # dropped when it arrives, so later samples keep their play times.
                    pcm = source.take(available)
                    source.skip_to(self.next_sample + FRAMES_PER_PACKET)
                    self.stats["underruns"] += 1
                else:
                    pcm = self._silent_packet
                self._send_packet(pcm.ljust(self.pcm.packet_bytes, b"\0"), copy=action.copy)
            elif isinstance(action, Skip):
                source.skip_to(action.to_sample)
                self.stats["late"] += action.to_sample - action.from_sample
            else:
                return action
        return None

    def _slot(self) -> Slot:
        sample = self.next_sample
        return Slot(self.seq, sample, self.timeline.rtp_of(sample), self.pacer.first_packet)

    def _send_packet(self, pcm: bytes, *, copy: bool = False) -> None:
        """Send the packet for `next_sample`; `copy`: send it once more a little later (too
        little lead for the receiver to ask for it if lost, pacer.py)."""
        wire = self.transport.send(pcm, self._slot())
        if copy:
            self._copies.append((self.stats["sent"], wire))
        self._send_copies(self.stats["sent"] - COPY_AFTER_PACKETS)
        self.backlog.add(
            SentPacket(seq=self.seq, first_sample=self.next_sample, wire=wire, pcm=pcm)
        )
        if self.pacer.opens_start:
            self._report_start()
        self.pacer.sent()
        self.stats["sent"] += 1
        self.seq = (self.seq + 1) & 0xFFFF

    def alac_frame(self, pcm: bytes) -> bytes:
        """One ALAC frame of `pcm`: compressed with -alac, else uncompressed (escape)."""
        if self.alac is None:
            frame = encode_escape(pcm, self.pcm.bits)
        else:
            frame = self.alac.encode(pcm)
            self.stats["compressed"] = self.alac.compressed
        self.stats["payload_bytes"] += len(frame)
        return frame

    def _send_copies(self, upto: int) -> None:
        """Send the copies of packets sent as number `upto` or earlier."""
        copies = self._copies
        while copies and copies[0][0] <= upto:
            if self.transport.send_copy(copies.popleft()[1]):
                self.stats["copies"] += 1

    # ---- drain ---------------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Play out the tail, then return; meanwhile keep answering resends.

        Silence packets follow the last input packet until teardown: a receiver notices a lost
        packet only when a later one arrives, so without them the last packets could not heal.
        """
        self.pacer.drain()
        end = self.timeline.play_ntp_of(self.next_sample)
        teardown_at = ntp_add_frames(end, ns_to_frames(DRAIN_TAIL_NS))
        while not self.stopping and self.clock.seconds_until(teardown_at) > 0:
            if self.pacer.phase is not Phase.DRAINING:
                return  # paused (and maybe resumed): the stream goes on (`stream`)
            if self._watch_rtsp():
                break
            action = self.pacer.next_drain_action()
            if isinstance(action, Send):
                self._send_packet(self._silent_packet)
                continue
            delay = min(
                self.clock.seconds_until(teardown_at),
                max(0.0, self.clock.seconds_until(action.until_ntp)),
            )
            await self._sleep(delay)

    # ---- pause / resume / flush (driven by commands) ---------------------------------------------

    async def pause(self) -> None:
        """Stop sending, flush the receiver, keep unplayed input for the resume."""
        if self.paused or self.transport.rtsp is None:
            self.status.log("pause ignored: already paused", level=2)
            return
        slot = self._slot()
        keep_from = self.pacer.pause()
        if keep_from is not None:
            kept = self.backlog.pcm_from(keep_from)
            if kept is not None and self._input_end is not None:  # not the tail's silence
                end = max(0, self._input_end - kept[0]) * self.pcm.bytes_per_frame
                kept = (kept[0], kept[1][:end]) if end else None
            if kept is not None:
                self.input.prepend(kept[0], kept[1])
                self.pacer.rewind_to(kept[0])
        self.backlog.clear()
        self._copies.clear()
        self._resume_rtp = slot.rtptime
        self._wake()
        await self.transport.flush(slot)
        # Reported once the receiver has flushed: a PLAY from now on is safe.
        self.status.log(f"Pause at : sample {self.next_sample}")
        self.status.emit(Paused(self.next_sample))

    def resume(self, at_ntp: int | None) -> None:
        """Continue from the first unplayed sample, audible at `at_ntp` (default: soon)."""
        if not self.paused:
            self.status.log("play ignored: not paused", level=2)
            return
        resume_sample = self.next_sample
        # The flush discarded everything before `_resume_rtp`: the pre-roll starts there.
        self.pacer.resume(at_ntp, self._resume_rtp)
        skipped = self.input.skip_to(self.pacer.preroll_end)  # an instant already (partly) past
        if skipped:
            self.stats["late"] += skipped
        self.transport.resumed()
        self.started_at_mono = asyncio.get_running_loop().time()
        self.watch.restarted(self.started_at_mono)
        self.status.log(f"Re-started at : sample {resume_sample}")
        self._wake()

    # ---- the command handler's view (raop_commands.StreamControl) -------------------------------

    def metadata_allowed(self, kind: int) -> bool:
        """The receiver takes metadata of this kind (its `md` TXT list)."""
        return kind in self.opts.metadata_types

    def current_rtp(self) -> int:
        """RTP timestamp of the sample playing now (not before the current anchor)."""
        playing = self.timeline.sample_at(self.clock.ntp())
        return self.timeline.rtp_of(max(playing, self.timeline.anchor.sample))

    async def set_parameter(self, headers: dict[str, str], body: bytes) -> int | None:
        """SET_PARAMETER on the session; the answer's status (None: no session)."""
        return await self.transport.set_parameter(headers, body)

    def discard_input(self) -> int:
        """Drop buffered input (ACTION=FLUSH); samples dropped."""
        return self.input.discard_all()

    def handle_command(self, key: str, value: str) -> None:
        """A `KEY=VALUE` line from the command FIFO."""
        if not self.transport.handle_command(key, value):
            self.commands.handle(key, value)

    def stop(self) -> None:
        """Leave the loop now (ACTION=STOP or a signal)."""
        self.stopping = True
        self._wake()

    async def teardown(self, *, quiet: bool = False) -> None:
        """The transport's TEARDOWN (bounded); `[STATUS] stopped` unless quiet."""
        if await self.transport.teardown() and not quiet:
            self.status.emit(Stopped(self.next_sample))


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
