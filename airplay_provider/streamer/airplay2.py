"""The AirPlay 2 streamer: the RAOP engine's pacing, start promise and drain, with AP2 set-up.

`Airplay2Streamer` extends `RaopStreamer`: the timeline, pre-roll, late-sample skipping,
resends, pause/FLUSH/resume and the drain are shared. What differs is here: HAP pairing and the
encrypted control connection, SETUP session (PTP or NTP) and stream (type 96, ALAC, `shk`),
the event channel, ChaCha20-Poly1305 audio, 0xD7 sync packets on PTP, `POST /feedback` every
2 s, and TEARDOWN of stream then session. A FLUSH (ACTION=FLUSH) keeps the session and the RTP
timeline: new audio follows a short pre-roll, without new pairing or SETUP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
import uuid

from airplay_provider.protocol import ap2
from airplay_provider.protocol.hap.credentials import HapCredentials
from airplay_provider.protocol.rtp import audio_packet
from airplay_provider.protocol.streamer_status import (
    Connected,
    Error,
    ErrorCode,
    Paired,
    PinRequired,
    Stopped,
    StreamerError,
    Timing,
)
from airplay_provider.protocol.timing import unix_ns_from_ntp
from airplay_provider.protocol.txt import TxtError, parse_features
from airplay_provider.streamer.airplay2_options import Ap2Options
from airplay_provider.streamer.airplay2_session import (
    EventChannel,
    ReceiverInfo,
    get_info,
    pair,
)
from airplay_provider.streamer.clock import SenderClock
from airplay_provider.streamer.ptp_master import PtpLease, PtpUnavailable, join_ptp_daemon
from airplay_provider.streamer.raop import RaopStreamer
from airplay_provider.streamer.raop_commands import RaopCommandHandler
from airplay_provider.streamer.raop_setup import expect_ok
from airplay_provider.streamer.rtsp_client import RtspClientError
from airplay_provider.streamer.status import StatusWriter
from airplay_provider.streamer.udp_services import ControlChannel, TimingResponder, open_udp_socket

USER_AGENT = "AirPlay/550.10"
FEEDBACK_INTERVAL_S = 2.0
FEEDBACK_MISSES_ALLOWED = 3
PLIST_HEADERS = {"Content-Type": ap2.PLIST_CONTENT_TYPE}


class Ap2CommandHandler(RaopCommandHandler):
    """The RAOP command set plus `PIN=` for receivers that demand PIN pairing."""

    def __init__(self, streamer: Airplay2Streamer) -> None:
        super().__init__(streamer)
        self.ap2_streamer = streamer

    def handle(self, key: str, value: str) -> None:
        """`PIN=<digits>` feeds the pairing; everything else as for RAOP."""
        if key == "PIN":
            self.ap2_streamer.provide_pin(value)
        else:
            super().handle(key, value)


class Airplay2Streamer(RaopStreamer):
    """One AirPlay 2 realtime stream from stdin to one receiver."""

    def __init__(
        self,
        options: Ap2Options,
        status: StatusWriter,
        *,
        clock: SenderClock | None = None,
        input_fd: int = 0,
    ) -> None:
        super().__init__(options.common, status, clock=clock, input_fd=input_fd)
        self.ap2 = options
        self.commands = Ap2CommandHandler(self)
        self.pairing_id = options.pairing_id or f"{random.getrandbits(64):016X}"
        self.session_uuid = str(uuid.uuid4()).upper()
        self.sealer: ap2.AudioSealer | None = None
        self.lease: PtpLease | None = None
        self.events: EventChannel | None = None
        self.pin: str | None = None
        self._pin_ready = asyncio.Event()
        self._ptp_minus_unix_ns = 0
        self.feedback_sent = 0

    # ---- set-up ---------------------------------------------------------------------------------

    async def connect(self) -> None:
        """info → pairing → SETUP session → events → RECORD → SETPEERS → SETUP stream → volume."""
        opts = self.opts
        rtsp = self.rtsp = await self._open_rtsp(user_agent=USER_AGENT, dacp_id=self.pairing_id)
        info = await get_info(rtsp, self._txt_features())
        secret, method, new_credentials = await pair(
            rtsp,
            info,
            credentials=self.ap2.credentials,
            pairing_id=self.pairing_id,
            pin_source=self._wait_for_pin if opts.cmdpipe else None,
        )
        self.status.log(f"paired with {opts.host} ({method})")
        if new_credentials is not None:  # the provider stores them for `--auth` next time
            self.status.emit(Paired(stored=self._store_credentials(new_credentials)))
        local_ip, peer_ip = rtsp.local_address, rtsp.peer_address
        family = socket.AF_INET6 if ":" in peer_ip else socket.AF_INET
        self.control = ControlChannel(open_udp_socket(family, opts.bind_address), self.on_resend)
        # The NTP responder also exists on PTP sessions (unused there): the shared pacing loop
        # waits on it, and it costs one idle socket.
        self.timing = TimingResponder(open_udp_socket(family, opts.bind_address), self.clock)
        await self._choose_timing(info, peer_ip)
        session_id = random.getrandbits(32)
        self.uri = f"rtsp://{f'[{local_ip}]' if ':' in local_ip else local_ip}/{session_id}"
        sender = ap2.SenderIdentity(
            device_id=":".join(self.pairing_id[i : i + 2] for i in range(0, 12, 2)),
            session_uuid=self.session_uuid,
            name="airplay-provider",
        )
        if self.lease is not None:
            body = ap2.setup_session_ptp(
                sender,
                group_uuid=str(uuid.uuid4()).upper(),
                clock_id=self.lease.clock_id,
                addresses=[local_ip],
            )
        else:
            body = ap2.setup_session_ntp(sender, timing_port=self.timing.endpoint.port)
        session = await self._plist_request("SETUP", body)
        if self.lease is not None and session.timing_peer_addresses:
            await self.lease.add_peers(list(session.timing_peer_addresses))
        try:
            self.events = await EventChannel.open(peer_ip, session.event_port, secret)
        except StreamerError as exc:  # as OwnTone: audio works without the event channel
            self.status.log(f"{exc}; continuing without it", level=2)
        response = await rtsp.request("RECORD", self.uri)
        expect_ok("RECORD", response.status)
        if self.lease is not None:
            response = await rtsp.request(
                "SETPEERS",
                self.uri,
                headers={"Content-Type": "/peer-list-changed"},
                body=ap2.setpeers([peer_ip, local_ip]),
            )
            expect_ok("SETPEERS", response.status)
        await self._setup_stream(session_id)
        self._place_start()
        if opts.volume is not None:
            await self.commands.send_volume(opts.volume)
        timing = "ptp" if self.lease is not None else "ntp"
        self.status.log(f"connected to {rtsp.peer_address} on port {opts.port} ({timing} timing)")
        self.status.emit(
            Connected(
                host=rtsp.peer_address,
                port=opts.port,
                latency_ms=opts.latency_ms,
                timing=timing,
                pairing=method,
            )
        )

    def _txt_features(self) -> int:
        text = self.ap2.txt.get("features", "")
        try:
            return parse_features(text) if text else 0
        except TxtError:
            return 0

    async def _choose_timing(self, info: ReceiverInfo, peer_ip: str) -> None:
        """PTP when asked or when the receiver has bit 41 and the grandmaster can run."""
        choice = self.ap2.timing
        if choice == "ntp" or (choice == "auto" and not info.supports_ptp):
            self.status.emit(Timing("ntp", reason=choice))
            return
        try:
            self.lease = await join_ptp_daemon([peer_ip])
        except PtpUnavailable as exc:
            if choice == "ptp":
                raise StreamerError(ErrorCode.PTP_UNAVAILABLE, str(exc)) from exc
            self.status.log(f"PTP unavailable ({exc}); using NTP timing", level=2)
            self.status.emit(Timing("ntp", reason="ptp_unavailable"))
            return
        wall_minus_mono = self.clock.unix_ns() - time.monotonic_ns()
        self._ptp_minus_unix_ns = self.lease.ptp_minus_mono_ns - wall_minus_mono
        self.status.emit(
            Timing(
                "ptp",
                clock_id=f"{self.lease.clock_id:016X}",
                daemon_pid=self.lease.daemon_pid,
                ptp_minus_mono_ns=self.lease.ptp_minus_mono_ns,
            )
        )

    async def _plist_request(self, method: str, body: bytes) -> ap2.SessionReply:
        assert self.rtsp is not None
        response = await self.rtsp.request(method, self.uri, headers=PLIST_HEADERS, body=body)
        if response.status == 400 and self.lease is None:
            raise StreamerError(ErrorCode.NTP_REFUSED, "SETUP: receiver refused NTP timing (400)")
        expect_ok(method, response.status)
        try:
            return ap2.parse_setup_session_reply(response.body)
        except ap2.Ap2Error as exc:
            raise StreamerError(ErrorCode.BAD_RESPONSE, str(exc)) from exc

    async def _setup_stream(self, session_id: int) -> None:
        assert self.rtsp is not None
        assert self.control is not None
        shk = os.urandom(ap2.AUDIO_KEY_BYTES)
        body = ap2.setup_stream(
            shk=shk, control_port=self.control.endpoint.port, connection_id=session_id
        )
        response = await self.rtsp.request("SETUP", self.uri, headers=PLIST_HEADERS, body=body)
        expect_ok("SETUP stream", response.status)
        try:
            reply = ap2.parse_setup_stream_reply(response.body)
        except ap2.Ap2Error as exc:
            raise StreamerError(ErrorCode.BAD_RESPONSE, str(exc)) from exc
        self.sealer = ap2.AudioSealer(shk)
        self.ssrc = 0 if self.lease is not None else session_id
        peer_ip = self.rtsp.peer_address
        self.audio_addr = (peer_ip, reply.data_port)
        self.control_addr = (peer_ip, reply.control_port)

    # ---- PIN -----------------------------------------------------------------------------------

    def provide_pin(self, pin: str) -> None:
        """A `PIN=` command arrived."""
        pin = pin.strip()
        if not pin.isdigit():
            self.status.log("ignoring PIN: expected digits", level=2)
            return
        self.pin = pin
        self._pin_ready.set()

    async def _wait_for_pin(self) -> str:
        if self.pin is None:
            self.status.log("receiver demands a PIN: send PIN=<digits> on the command pipe")
            self.status.emit(PinRequired())
            await self._pin_ready.wait()
        assert self.pin is not None
        return self.pin

    # ---- streaming -----------------------------------------------------------------------------

    async def stream(self) -> None:
        """The shared pacing loop plus the 2 s feedback keepalive."""
        if self.lease is not None and self.timing is not None:
            self.timing.answered.set()  # PTP: nothing to wait for
        self.spawn(self._feedback())
        await super().stream()

    def _store_credentials(self, credentials: HapCredentials) -> bool:
        """Write new credentials to `--credentials_out` (mode 0600); never to a log or status."""
        path = self.ap2.credentials_out
        if not path:
            self.status.log("new credentials not kept: no --credentials_out given", level=2)
            return False
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(credentials.serialize() + "\n")
        except OSError as exc:
            self.status.log(f"cannot store credentials in {path}: {exc}", level=1)
            return False
        return True

    def _build_wire(self, pcm: bytes, *, marker: bool) -> bytes:
        """RTP header in clear, ALAC payload sealed with ChaCha20-Poly1305 (B.14)."""
        assert self.sealer is not None
        header = audio_packet(
            seq=self.seq,
            timestamp=self.timeline.rtp_of(self.next_sample),
            ssrc=self.ssrc,
            payload=b"",
            marker=marker,
        )
        return self.sealer.seal(header, self.alac_frame(pcm))

    def _send_sync(self, *, first: bool) -> None:
        if self.lease is None:
            super()._send_sync(first=first)
            return
        assert self.control is not None
        assert self.control_addr is not None
        anchor = self.next_sample - ap2.PTP_ANCHOR_OFFSET
        play_unix_ns = unix_ns_from_ntp(self.timeline.play_ntp_of(anchor))
        packet = ap2.ptp_sync_packet(
            first=first,
            rtp_frame=self.timeline.rtp_of(self.next_sample),
            ptp_ns=play_unix_ns + self._ptp_minus_unix_ns,
            clock_id=self.lease.clock_id,
        )
        self.control.endpoint.send(packet, self.control_addr)

    async def _feedback(self) -> None:
        """`POST /feedback` every 2 s; the session ends after 3 unanswered in a row."""
        misses = 0
        while not self.stopping:
            await asyncio.sleep(FEEDBACK_INTERVAL_S)
            if self.rtsp is None:
                return
            try:
                response = await self.rtsp.request("POST", "/feedback", timeout=2.0)
                misses = 0 if response.status == 200 else misses + 1
                self.feedback_sent += 1
            except RtspClientError:
                misses += 1
            if misses >= FEEDBACK_MISSES_ALLOWED:
                self.status.emit(Error(ErrorCode.FEEDBACK, "receiver stopped answering"))
                self.stop()

    # ---- teardown --------------------------------------------------------------------------------

    async def teardown(self, *, quiet: bool = False) -> None:
        """TEARDOWN the stream, then the session; close every connection (bounded)."""
        rtsp, self.rtsp = self.rtsp, None
        if rtsp is not None:
            with contextlib.suppress(RtspClientError, OSError):
                if self.sealer is not None:
                    body = ap2.teardown_stream()
                    await rtsp.request(
                        "TEARDOWN", self.uri, headers=PLIST_HEADERS, body=body, timeout=2.0
                    )
                body = ap2.teardown_session()
                await rtsp.request(
                    "TEARDOWN", self.uri, headers=PLIST_HEADERS, body=body, timeout=2.0
                )
            await rtsp.close()
        if self.events is not None:
            await self.events.close()
            self.events = None
        if self.lease is not None:
            await self.lease.close()
            self.lease = None
        if rtsp is not None and not quiet:
            self.status.emit(Stopped(self.next_sample))

    def close(self) -> None:
        """Release sockets and tasks (idempotent); connections were closed by `teardown`."""
        super().close()
        if self.events is not None:
            self.events.task.cancel()
            self.events.writer.close()
            self.events = None
        if self.lease is not None:
            self.lease.writer.close()
            self.lease = None
