"""The RAOP streamer: RTSP session set-up, paced RTP audio, sync, resends, commands, teardown.

Time flows through one `Timeline` (protocol/schedule.py): input sample k is audible at
`ntpstart + k/44100`. Which packet leaves when (pre-roll, the paced build-up of the lead,
skip-late, underruns) is decided by the `Pacer` (streamer/pacer.py, no I/O); this class carries
its decisions out: reads input, builds and sends packets, sleeps, answers resends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from collections.abc import Coroutine
from typing import TYPE_CHECKING

from airplay_provider.protocol.alac import encode_uncompressed
from airplay_provider.protocol.alac_encoder import AlacEncoder
from airplay_provider.protocol.backlog import Backlog, SentPacket
from airplay_provider.protocol.liveness import ReceiverWatch
from airplay_provider.protocol.rtp import audio_packet, resend_reply, sync_packet
from airplay_provider.protocol.rtsp import parse_transport
from airplay_provider.protocol.schedule import Timeline
from airplay_provider.protocol.sdp import announce_sdp
from airplay_provider.protocol.streamer_status import (
    Connected,
    Elapsed,
    Eof,
    Error,
    ErrorCode,
    Exit,
    Paused,
    Playing,
    Started,
    Stats,
    Stopped,
    StreamerError,
)
from airplay_provider.protocol.timing import (
    FRAMES_PER_PACKET,
    frames_to_ns,
    ns_to_frames,
    ntp_add_frames,
)
from airplay_provider.streamer.clock import SenderClock
from airplay_provider.streamer.pacer import (
    InputDone,
    Pacer,
    PacketKind,
    Phase,
    Send,
    Skip,
    Wait,
)
from airplay_provider.streamer.pcm_input import BYTES_PER_SAMPLE, PcmInput
from airplay_provider.streamer.raop_commands import RaopCommandHandler
from airplay_provider.streamer.raop_options import RaopOptions
from airplay_provider.streamer.raop_setup import expect_ok, legacy_pair_verify
from airplay_provider.streamer.rtsp_client import RtspClient, RtspClientError
from airplay_provider.streamer.status import JitterStats, StatusWriter
from airplay_provider.streamer.udp_services import (
    Address,
    AudioSender,
    ControlChannel,
    TimingResponder,
    open_udp_socket,
)

if TYPE_CHECKING:
    from airplay_provider.protocol.raop_crypto import AudioCipher

PACKET_BYTES = FRAMES_PER_PACKET * BYTES_PER_SAMPLE
SILENT_PACKET = bytes(PACKET_BYTES)
WAKE_EARLY_S = 0.001
MAX_PACKETS_PER_WAKE = 512  # bounded work per wake-up (about 4 s of audio)
TIMING_WAIT_S = 0.4  # how long to wait for the receiver's first timing request at start
DRAIN_TAIL_NS = 250_000_000  # after the last frame's play time, before TEARDOWN
KEEPALIVE_S = 25.0
STATS_EVERY_S = 5.0
WATCH_EVERY_S = 0.1  # how often the RTSP connection is checked for a receiver gone


class RaopStreamer:
    """One RAOP stream from stdin to one receiver."""

    def __init__(
        self,
        options: RaopOptions,
        status: StatusWriter,
        *,
        clock: SenderClock | None = None,
        input_fd: int = 0,
    ) -> None:
        self.opts = options
        self.status = status
        self.clock = clock or SenderClock()
        self.input = PcmInput(input_fd)
        latency_frames = ns_to_frames(options.latency_ms * 1_000_000)
        self.timeline = Timeline(
            start_ntp=options.ntpstart or 0,
            first_rtp=random.getrandbits(32),
            latency_frames=latency_frames,
        )
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.backlog = Backlog(1024)
        self.rtsp: RtspClient | None = None
        self.uri = ""
        self.cipher: AudioCipher | None = None
        #: -alac: compressed ALAC frames (sent uncompressed when that is not smaller)
        self.alac = AlacEncoder() if options.alac else None
        self.audio_addr: Address | None = None
        self.control_addr: Address | None = None
        self.timing: TimingResponder | None = None
        self.control: ControlChannel | None = None
        self.audio: AudioSender | None = None
        self.watch = ReceiverWatch()
        self.gone: str | None = None  # why the receiver is surely gone (protocol/liveness.py)
        self.pacer = Pacer(self.timeline, self.clock)
        self.last_sync_mono = 0.0
        self.started_at_mono = 0.0
        self.stopping = False
        self._waiter: asyncio.Future[None] | None = None
        self._waiting_for_input = False
        self.input.on_change = self._on_input
        self.stats = {
            "sent": 0,
            "resent": 0,
            "late": 0,
            "underruns": 0,
            "lost": 0,
            "send_errors": 0,
            "compressed": 0,
            "payload_bytes": 0,
        }
        self.commands = RaopCommandHandler(self)
        self.jitter = JitterStats()
        self._tasks: set[asyncio.Task[None]] = set()

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
        if self.timing is not None:
            self.timing.endpoint.close()
        if self.control is not None:
            self.control.endpoint.close()
        if self.audio is not None:
            self.audio.close()

    def spawn(self, coro: Coroutine[object, object, None]) -> None:
        """Run a background coroutine, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- RTSP session set-up ----------------------------------------------------------------

    async def connect(self) -> None:
        """OPEN → ANNOUNCE → SETUP → RECORD → volume; then `[STATUS] connected`."""
        opts = self.opts
        rtsp = self.rtsp = await self._open_rtsp(
            user_agent="iTunes/12.12 (Macintosh; OS X 14.0) AppleWebKit/0",
            dacp_id=opts.dacp_id,
            password=opts.password,
        )
        if opts.secret:
            await legacy_pair_verify(rtsp, opts.secret)
            self.status.log("pair-verify done")
        local_ip = rtsp.local_address
        family = socket.AF_INET6 if ":" in rtsp.peer_address else socket.AF_INET
        self.timing = TimingResponder(open_udp_socket(family, opts.bind_address), self.clock)
        self.control = ControlChannel(open_udp_socket(family, opts.bind_address), self.on_resend)
        session_id = random.getrandbits(32)
        host_in_uri = f"[{local_ip}]" if ":" in local_ip else local_ip
        self.uri = f"rtsp://{host_in_uri}/{session_id}"

        rsa_aes_key = aes_iv = None
        extra: dict[str, str] = {"Content-Type": "application/sdp"}
        if opts.use_encryption:
            # Loaded only when encrypting: cryptography costs start-up time.
            from airplay_provider.protocol.raop_crypto import (  # noqa: PLC0415
                AudioCipher,
                apple_challenge,
                rsa_encrypt_aes_key,
            )

            aes_key, aes_iv = os.urandom(16), os.urandom(16)
            rsa_aes_key = rsa_encrypt_aes_key(aes_key)
            self.cipher = AudioCipher(aes_key, aes_iv)
            extra["Apple-Challenge"] = apple_challenge(os.urandom(16))
        sdp = announce_sdp(
            session_id=session_id,
            sender_ip=local_ip,
            receiver_ip=rtsp.peer_address,
            alac=True,
            rsa_aes_key=rsa_aes_key,
            aes_iv=aes_iv,
        )
        response = await rtsp.request("ANNOUNCE", self.uri, headers=extra, body=sdp.encode())
        if response.status == 401:
            if opts.password is None:
                raise StreamerError(
                    ErrorCode.PASSWORD_REQUIRED, "receiver requires a password (-password)"
                )
            raise StreamerError(ErrorCode.AUTH_FAILED, "receiver rejected the password")
        expect_ok("ANNOUNCE", response.status)

        transport = (
            "RTP/AVP/UDP;unicast;interleaved=0-1;mode=record;"
            f"control_port={self.control.endpoint.port};timing_port={self.timing.endpoint.port}"
        )
        response = await rtsp.request("SETUP", self.uri, headers={"Transport": transport})
        expect_ok("SETUP", response.status)
        fields = parse_transport(response.headers.get("Transport") or "")
        try:
            server_port = int(fields["server_port"])
            control_port = int(fields["control_port"])
        except (KeyError, ValueError) as exc:
            raise StreamerError(
                ErrorCode.BAD_RESPONSE, "SETUP answer lacks server_port/control_port"
            ) from exc
        self.audio_addr = (rtsp.peer_address, server_port)
        self.control_addr = (rtsp.peer_address, control_port)
        session = response.headers.get("Session")
        rtsp.session = session.split(";")[0].strip() if session else "1"

        self._place_start()
        rtp_info = f"seq={self.seq};rtptime={self.timeline.rtp_of(self.next_sample)}"
        response = await rtsp.request(
            "RECORD", self.uri, headers={"Range": "npt=0-", "RTP-Info": rtp_info}
        )
        expect_ok("RECORD", response.status)
        if opts.volume is not None:
            await self.commands.send_volume(opts.volume)
        self.status.log(
            f"connected to {rtsp.peer_address} on port {opts.port}, "
            f"player latency is {opts.latency_ms} ms"
        )
        self.status.emit(
            Connected(
                host=rtsp.peer_address,
                port=opts.port,
                latency_ms=opts.latency_ms,
                encrypted=self.cipher is not None,
                audio_latency=response.headers.get("Audio-Latency") or "",
            )
        )

    def _place_start(self) -> None:
        """Put sample 0 at `-ntpstart` (skipping what is too late) behind a silent pre-roll."""
        first_real = self.pacer.place_start(self.opts.ntpstart)
        skipped = self.input.skip_to(first_real)
        if skipped:
            self.stats["late"] += skipped

    @property
    def next_sample(self) -> int:
        """The first input sample of the next packet."""
        return self.pacer.next_sample

    @property
    def paused(self) -> bool:
        """Paused by a command (until the resume)."""
        return self.pacer.phase is Phase.PAUSED

    async def _open_rtsp(
        self, *, user_agent: str, dacp_id: str | None, password: str | None = None
    ) -> RtspClient:
        """Connect the RTSP session with the headers every request carries (A.2)."""
        opts = self.opts
        headers = {
            "User-Agent": user_agent,
            "Client-Instance": dacp_id or f"{random.getrandbits(64):016X}",
        }
        if dacp_id:
            headers["DACP-ID"] = dacp_id
        if opts.active_remote:
            headers["Active-Remote"] = opts.active_remote
        return await RtspClient.connect(
            opts.host,
            opts.port,
            timeout=5.0,
            bind_address=opts.bind_address,
            common_headers=headers,
            password=password,
            fallbacks=opts.fallback_hosts,
        )

    # ---- the pacing loop ---------------------------------------------------------------------

    async def stream(self) -> None:
        """Send audio until end of input (then drain) or STOP."""
        assert self.timing is not None
        assert self.audio_addr is not None
        family = socket.AF_INET6 if ":" in self.audio_addr[0] else socket.AF_INET
        try:
            self.audio = AudioSender(
                open_udp_socket(family, self.opts.bind_address), self.audio_addr, self._port_refused
            )
        except OSError as exc:
            raise StreamerError(ErrorCode.OS_ERROR, f"audio socket: {exc}") from exc
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.timing.answered.wait(), TIMING_WAIT_S)
        if self.opts.ntpstart is None:
            self.pacer.place_start(None)  # sample 0 counts from now, after the timing wait
        loop = asyncio.get_running_loop()
        self.started_at_mono = loop.time()
        self.watch.restarted(self.started_at_mono)
        self.spawn(self._periodic())
        self.spawn(self._watch_rtsp())
        while not self.stopping:
            if self.paused:
                await self._sleep(None)
                continue
            wait = self._send_due_packets()
            if wait is None:
                continue  # interrupted, or the per-wake bound reached
            if isinstance(wait, InputDone):
                if self.input.total_bytes == 0:
                    raise StreamerError(ErrorCode.EMPTY_INPUT, "no audio arrived on stdin")
                break
            delay = max(0.0, self.clock.seconds_until(wait.until_ntp))
            planned = loop.time() + delay
            # The event loop's poll timeout has 1 ms granularity and rounds up; ask for the wake
            # that much early (packets may leave up to SEND_WINDOW_NS early anyway).
            await self._sleep(max(0.0, delay - WAKE_EARLY_S), wake_on_input=wait.wake_on_input)
            if not wait.wake_on_input and not self._interrupted():
                self.jitter.add(loop.time() - planned)
        if not self.stopping:
            self.status.emit(Eof(self.next_sample))
            await self._drain()
        if self.gone is not None:
            raise StreamerError(ErrorCode.RECEIVER_GONE, self.gone)

    # ---- a receiver gone (protocol/liveness.py decides) ----------------------------------------

    async def _watch_rtsp(self) -> None:
        """Between requests, a closed or reset RTSP connection means the receiver is gone."""
        while not self.stopping:
            await asyncio.sleep(WATCH_EVERY_S)
            rtsp = self.rtsp
            lost = rtsp.lost() if rtsp is not None and not self.stopping else None
            if lost is not None:
                self._receiver_gone(self.watch.rtsp_lost(reset=lost == "reset"))

    def _port_refused(self) -> None:
        """ICMP port unreachable for our audio."""
        if self.stopping:
            return
        verdict = self.watch.port_refused(asyncio.get_running_loop().time())
        if verdict is not None:
            self._receiver_gone(verdict)

    def _receiver_gone(self, why: str) -> None:
        if self.gone is None and not self.stopping:
            self.gone = why
            self.status.log(why, level=1)
            self.stop()

    def _interrupted(self) -> bool:
        """True when a command paused or stopped the stream meanwhile."""
        return self.stopping or self.paused

    async def _sleep(self, delay: float | None, *, wake_on_input: bool = False) -> None:
        """Sleep `delay` seconds (None: until woken); commands always wake us.

        One future and one timer per wait: this runs 125 times a second, so it stays cheap.
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
                    pcm = SILENT_PACKET
                self._send_packet(pcm.ljust(PACKET_BYTES, b"\0"))
            elif isinstance(action, Skip):
                source.skip_to(action.to_sample)
                self.stats["late"] += action.to_sample - action.from_sample
            else:
                return action
        return None

    def _send_packet(self, pcm: bytes) -> None:
        assert self.audio is not None
        first = self.pacer.first_packet
        loop_now = asyncio.get_running_loop().time()
        if first or loop_now - self.last_sync_mono >= self._sync_interval(loop_now):
            self._send_sync(first=first)
            self.last_sync_mono = loop_now
        wire = self._build_wire(pcm, marker=first)
        if not self.audio.send(wire):
            self.stats["send_errors"] += 1
        self.backlog.add(
            SentPacket(seq=self.seq, first_sample=self.next_sample, wire=wire, pcm=pcm)
        )
        if self.next_sample == self.pacer.preroll_end:
            self._report_start()
        self.pacer.sent()
        self.stats["sent"] += 1
        self.seq = (self.seq + 1) & 0xFFFF

    def alac_frame(self, pcm: bytes) -> bytes:
        """One ALAC frame of `pcm`: compressed with -alac, else uncompressed (escape)."""
        if self.alac is None:
            frame = encode_uncompressed(pcm)
        else:
            frame = self.alac.encode(pcm)
            self.stats["compressed"] = self.alac.compressed
        self.stats["payload_bytes"] += len(frame)
        return frame

    def _build_wire(self, pcm: bytes, *, marker: bool) -> bytes:
        """The RTP packet for `pcm` at `next_sample`: ALAC, AES-CBC when encrypting."""
        payload = self.alac_frame(pcm)
        if self.cipher is not None:
            payload = self.cipher.encrypt(payload)
        return audio_packet(
            seq=self.seq,
            timestamp=self.timeline.rtp_of(self.next_sample),
            ssrc=self.ssrc,
            payload=payload,
            marker=marker,
        )

    def _sync_interval(self, loop_now: float) -> float:
        # A receiver ignores sync packets until it has measured our clock (shairport-sync:
        # "Sync packet received before we got a timing packet back"), and judges the first
        # packet late if the anchor comes too late: so sync often while starting, then 1/s.
        return 0.04 if loop_now - self.started_at_mono < 0.6 else 1.0

    def _send_sync(self, *, first: bool) -> None:
        assert self.control is not None
        assert self.control_addr is not None
        fields = self.timeline.sync_fields(self.next_sample)
        packet = sync_packet(
            first=first, rtp_latency=fields.rtp_latency, ntp=fields.ntp, rtp_now=fields.rtp_now
        )
        self.control.endpoint.send(packet, self.control_addr)

    def _report_start(self) -> None:
        pacer = self.pacer
        actual = self.timeline.play_ntp_of(self.next_sample)
        fields = {
            "requested_ntp": pacer.requested_ntp,
            "actual_ntp": actual,
            "first_sample": self.next_sample,
            "seq": self.seq,
            "rtptime": self.timeline.rtp_of(self.next_sample),
            "skipped_frames": self.next_sample - pacer.requested_first_sample,
        }
        if pacer.resumes == 0:
            self.status.log(
                f"restarting w/o pause, first sample {self.next_sample} at NTP {actual}"
            )
            self.status.emit(Started(**fields))
        else:
            self.status.log(f"restarting w/ pause, sample {self.next_sample} at NTP {actual}")
        self.status.emit(Playing(**fields))

    # ---- resends, periodic work ----------------------------------------------------------------

    def on_resend(self, first_seq: int, count: int, addr: Address) -> None:
        """Answer a receiver's resend request from the backlog (A.12)."""
        assert self.control is not None
        for offset in range(min(count, self.backlog.capacity)):
            seq = (first_seq + offset) & 0xFFFF
            entry = self.backlog.get(seq)
            if entry is None:
                self.stats["lost"] += 1
                self.status.log(f"lost packet out of backlog: {seq}", level=4)
                continue
            if self.control.endpoint.send(resend_reply(entry.wire), addr):
                self.stats["resent"] += 1

    async def _periodic(self) -> None:
        """Elapsed/stats reports and RTSP keepalive."""
        loop = asyncio.get_running_loop()
        last_keepalive = last_stats = loop.time()
        while not self.stopping:
            await asyncio.sleep(1.0)
            now = loop.time()
            if not self.paused and not self.pacer.first_packet:
                played = self.timeline.sample_at(self.clock.ntp())
                if played >= 0:
                    ms = frames_to_ns(played) // 1_000_000
                    self.status.log(f"elapsed milliseconds: {ms}", level=5)
                    self.status.emit(Elapsed(ms))
            if now - last_stats >= STATS_EVERY_S:
                last_stats = now
                self.status.emit(Stats(**self.stats))
            if now - last_keepalive >= KEEPALIVE_S and self.rtsp is not None:
                last_keepalive = now
                try:
                    await self.rtsp.request("OPTIONS", "*")
                except RtspClientError as exc:
                    self.status.emit(Error(exc.code, f"keepalive: {exc}"))
                    self.stopping = True
                    self._wake()

    async def _drain(self) -> None:
        """Play out the tail, then return; meanwhile keep answering resends.

        Silence packets follow the last input packet until teardown: a receiver notices a lost
        packet only when a later one arrives, so without them the last packets could not heal.
        """
        self.pacer.drain()
        end = self.timeline.play_ntp_of(self.next_sample)
        teardown_at = ntp_add_frames(end, ns_to_frames(DRAIN_TAIL_NS))
        while not self.stopping and self.clock.seconds_until(teardown_at) > 0:
            action = self.pacer.next_drain_action()
            if isinstance(action, Send):
                self._send_packet(SILENT_PACKET)
                continue
            delay = min(
                self.clock.seconds_until(teardown_at),
                max(0.0, self.clock.seconds_until(action.until_ntp)),
            )
            await self._sleep(delay)

    # ---- pause / resume / flush (driven by commands) ---------------------------------------------

    async def pause(self) -> None:
        """Stop sending, flush the receiver, keep unplayed input for the resume."""
        if self.paused or self.rtsp is None:
            self.status.log("pause ignored: already paused", level=2)
            return
        flush_rtp = self.timeline.rtp_of(self.next_sample)
        keep_from = self.pacer.pause()
        if keep_from is not None:
            kept = self.backlog.pcm_from(keep_from)
            if kept is not None:
                self.input.prepend(kept[0], kept[1])
                self.pacer.rewind_to(kept[0])
        self.backlog.clear()
        self._resume_rtp = flush_rtp
        self._wake()
        await self.rtsp.request(
            "FLUSH", self.uri, headers={"RTP-Info": f"seq={self.seq};rtptime={flush_rtp}"}
        )
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
        if self.rtsp is None:
            return None
        response = await self.rtsp.request("SET_PARAMETER", self.uri, headers=headers, body=body)
        return response.status

    def discard_input(self) -> int:
        """Drop buffered input (ACTION=FLUSH); samples dropped."""
        return self.input.discard_all()

    def handle_command(self, key: str, value: str) -> None:
        """A `KEY=VALUE` line from the command FIFO."""
        self.commands.handle(key, value)

    def stop(self) -> None:
        """Leave the loop now (ACTION=STOP or a signal)."""
        self.stopping = True
        self._wake()

    async def teardown(self, *, quiet: bool = False) -> None:
        """TEARDOWN and close the RTSP connection (bounded)."""
        rtsp, self.rtsp = self.rtsp, None
        if rtsp is None:
            return
        with contextlib.suppress(RtspClientError, OSError):
            await rtsp.request("TEARDOWN", self.uri, timeout=2.0)
        await rtsp.close()
        if not quiet:
            self.status.emit(Stopped(self.next_sample))

    _resume_rtp: int = 0


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
