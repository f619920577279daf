"""The AirPlay 2 control session both AP2 transports (realtime, buffered) share.

HAP pairing and the encrypted control connection, timing choice (PTP or NTP), SETUP session,
the event channel, RECORD and SETPEERS; then plist requests, `POST /feedback` every 2 s, `PIN=`
and TEARDOWN of stream then session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid

from airplay_provider.protocol import ap2
from airplay_provider.protocol.hap.credentials import HapCredentials
from airplay_provider.protocol.ptp_follow import keeps_own_clock
from airplay_provider.protocol.ptp_readiness import ClockState
from airplay_provider.protocol.streamer_status import (
    Error,
    ErrorCode,
    Paired,
    PinRequired,
    StreamerError,
    Timing,
)
from airplay_provider.protocol.txt import TxtError, parse_features
from airplay_provider.streamer.airplay2_options import Ap2Options
from airplay_provider.streamer.airplay2_session import EventChannel, ReceiverInfo, get_info, pair
from airplay_provider.streamer.clock_follow import LOCK_WAIT_S, PeerClock, follow_clock
from airplay_provider.streamer.clock_watch import start_watch, stop_watch
from airplay_provider.streamer.ptp_lease import PtpLease, join_ptp_daemon
from airplay_provider.streamer.ptp_master import PtpUnavailable
from airplay_provider.streamer.raop import open_rtsp, session_uri
from airplay_provider.streamer.raop_setup import expect_ok
from airplay_provider.streamer.rtsp_client import RtspClient, RtspClientError
from airplay_provider.streamer.transport import LoopView

USER_AGENT = "AirPlay/550.10"
FEEDBACK_INTERVAL_S = 2.0
FEEDBACK_MISSES_ALLOWED = 3
PLIST_HEADERS = {"Content-Type": ap2.PLIST_CONTENT_TYPE}


class Ap2Control:
    """One AirPlay 2 control session (RTSP over the paired, encrypted connection)."""

    def __init__(self, loop: LoopView, options: Ap2Options) -> None:
        self.loop = loop
        self.ap2 = options
        self.pairing_id = options.pairing_id or f"{random.getrandbits(64):016X}"
        self.session_uuid = str(uuid.uuid4()).upper()
        self.rtsp: RtspClient | None = None
        self.uri = ""
        self.secret = b""
        self.method = ""
        self.lease: PtpLease | None = None
        self.clock_watch: asyncio.Task[ClockState] | None = None
        self.events: EventChannel | None = None
        self.pin: str | None = None
        self._pin_ready = asyncio.Event()
        self.ptp_minus_unix_ns = 0
        self.feedback_sent = 0
        #: A receiver keeping its own clock (standalone HomePod): we follow it instead.
        self.follow_receiver = False
        self.peer_clock = PeerClock()

    @property
    def timing(self) -> str:
        """`ptp` or `ntp`."""
        return "ptp" if self.lease is not None else "ntp"

    async def pair(self) -> tuple[RtspClient, ReceiverInfo]:
        """Connect, `GET /info`, pair (storing new credentials); returns the connection, info."""
        opts = self.loop.opts
        status = self.loop.status
        rtsp = self.rtsp = await open_rtsp(opts, user_agent=USER_AGENT, dacp_id=self.pairing_id)
        info = await get_info(rtsp, self._txt_features())
        self.secret, self.method, new_credentials = await pair(
            rtsp,
            info,
            credentials=self.ap2.credentials,
            pairing_id=self.pairing_id,
            pin_source=self._wait_for_pin if opts.cmdpipe else None,
        )
        status.log(f"paired with {opts.host} ({self.method})")
        if new_credentials is not None:  # the provider stores them for `--auth` next time
            status.emit(Paired(stored=self._store_credentials(new_credentials)))
        return rtsp, info

    def _txt_features(self) -> int:
        text = self.ap2.txt.get("features", "")
        try:
            return parse_features(text) if text else 0
        except TxtError:
            return 0

    async def choose_timing(self, info: ReceiverInfo, peer_ip: str) -> None:
        """PTP when asked or when the receiver has bit 41 and the grandmaster can run."""
        choice = self.ap2.timing
        status = self.loop.status
        if choice == "ntp" or (choice == "auto" and not info.supports_ptp):
            status.emit(Timing("ntp", reason=choice))
            return
        # A standalone HomePod (TXT) never follows us: do not offer it our clock at all.
        self.follow_receiver = keeps_own_clock(self.ap2.txt)
        try:
            self.lease = await join_ptp_daemon([] if self.follow_receiver else [peer_ip])
            if self.follow_receiver:
                await self.lease.follow([peer_ip])
        except PtpUnavailable as exc:
            if choice == "ptp":
                raise StreamerError(ErrorCode.PTP_UNAVAILABLE, str(exc)) from exc
            status.log(f"PTP unavailable ({exc}); using NTP timing", level=2)
            status.emit(Timing("ntp", reason="ptp_unavailable"))
            return
        wall_minus_mono = self.loop.clock.unix_ns() - time.monotonic_ns()
        self.ptp_minus_unix_ns = self.lease.ptp_minus_mono_ns - wall_minus_mono
        status.emit(
            Timing(
                "ptp",
                reason="receiver_clock" if self.follow_receiver else None,
                clock_id=f"{self.lease.clock_id:016X}",
                daemon_pid=self.lease.daemon_pid,
                ptp_minus_mono_ns=self.lease.ptp_minus_mono_ns,
            )
        )

    async def setup_session(self, *, timing_port: int) -> int:
        """SETUP session → event channel → RECORD → SETPEERS (PTP); returns the session id."""
        rtsp = self.rtsp
        assert rtsp is not None
        local_ip, peer_ip = rtsp.local_address, rtsp.peer_address
        session_id = random.getrandbits(32)
        self.uri = session_uri(local_ip, session_id)
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
            body = ap2.setup_session_ntp(sender, timing_port=timing_port)
        session = await self._setup_session(body)
        if self.lease is not None and session.timing_peer_addresses:
            addresses = [a for a in session.timing_peer_addresses if a != local_ip]
            if self.follow_receiver:
                await self.lease.follow(addresses)
            else:
                await self.lease.add_peers(list(session.timing_peer_addresses))
        try:
            self.events = await EventChannel.open(peer_ip, session.event_port, self.secret)
        except StreamerError as exc:  # as OwnTone: audio works without the event channel
            self.loop.status.log(f"{exc}; continuing without it", level=2)
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
            # `[STATUS] clock` from now until the receiver follows our clock (and after)
            peers = [a for a in session.timing_peer_addresses if a != local_ip]
            self.clock_watch = self._watch_clock(self.lease, peer_ip, peers)
        return session_id

    def _watch_clock(
        self, lease: PtpLease, peer_ip: str, peers: list[str]
    ) -> asyncio.Task[ClockState]:
        """Watch the receiver follow our clock; follow its own when it keeps one (known from
        the TXT, or seen: it announces its clock and never probes ours), unless `--timing ntp`."""
        status = self.loop.status

        async def follow() -> ClockState:
            if not self.follow_receiver:
                status.log(f"{peer_ip} keeps its own PTP clock; following it", level=2)
            self.follow_receiver = True
            return await follow_clock(lease, peer_ip, peers, status, self.peer_clock)

        if self.follow_receiver:
            return asyncio.create_task(follow(), name="clock-follow")
        return start_watch(lease, peer_ip, peers, status, on_own_clock=follow)

    async def wait_receiver_clock(self) -> bool:
        """Until the receiver's own clock is measured (its first anchor must be on it), at most
        `LOCK_WAIT_S`; whether it is."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.peer_clock.measured.wait(), LOCK_WAIT_S)
        if not self.peer_clock.locked:
            self.loop.status.log("receiver's own clock not measured; starting anyway", level=2)
        return self.peer_clock.locked

    def network_time(self, ptp_ns: int, *, governs_ns: int = 0) -> tuple[int, int]:
        """(network time, timeline clock id) of our PTP instant `ptp_ns` for an anchor in force
        for `governs_ns`: ours, or translated onto the receiver's own clock once we follow it."""
        assert self.lease is not None
        return self.peer_clock.network_time(ptp_ns, self.lease.clock_id, governs_ns=governs_ns)

    async def _setup_session(self, body: bytes) -> ap2.SessionReply:
        assert self.rtsp is not None
        response = await self.rtsp.request("SETUP", self.uri, headers=PLIST_HEADERS, body=body)
        if response.status == 400 and self.lease is None:
            raise StreamerError(ErrorCode.NTP_REFUSED, "SETUP: receiver refused NTP timing (400)")
        expect_ok("SETUP", response.status)
        try:
            return ap2.parse_setup_session_reply(response.body)
        except ap2.Ap2Error as exc:
            if self.lease is None:  # shairport-sync 5: "can not handle NTP streams", no plist
                raise StreamerError(
                    ErrorCode.NTP_REFUSED, f"SETUP: receiver does not handle NTP timing ({exc})"
                ) from exc
            raise StreamerError(ErrorCode.BAD_RESPONSE, str(exc)) from exc

    async def plist_request(self, method: str, body: bytes, *, what: str) -> bytes:
        """A plist request on the session; the answer's body (StreamerError unless 200)."""
        assert self.rtsp is not None
        response = await self.rtsp.request(method, self.uri, headers=PLIST_HEADERS, body=body)
        expect_ok(what, response.status)
        return response.body

    async def set_parameter(self, headers: dict[str, str], body: bytes) -> int | None:
        """SET_PARAMETER on the session; the answer's status (None: no session)."""
        if self.rtsp is None:
            return None
        response = await self.rtsp.request("SET_PARAMETER", self.uri, headers=headers, body=body)
        return response.status

    # ---- PIN, credentials ------------------------------------------------------------------------

    def provide_pin(self, pin: str) -> None:
        """A `PIN=` command arrived."""
        pin = pin.strip()
        if not pin.isdigit():
            self.loop.status.log("ignoring PIN: expected digits", level=2)
            return
        self.pin = pin
        self._pin_ready.set()

    async def _wait_for_pin(self) -> str:
        if self.pin is None:
            self.loop.status.log("receiver demands a PIN: send PIN=<digits> on the command pipe")
            self.loop.status.emit(PinRequired())
            await self._pin_ready.wait()
        assert self.pin is not None
        return self.pin

    def _store_credentials(self, credentials: HapCredentials) -> bool:
        """Write new credentials to `--credentials_out` (mode 0600); never to a log or status."""
        path = self.ap2.credentials_out
        status = self.loop.status
        if not path:
            status.log("new credentials not kept: no --credentials_out given", level=2)
            return False
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(credentials.serialize() + "\n")
        except OSError as exc:
            status.log(f"cannot store credentials in {path}: {exc}", level=1)
            return False
        return True

    # ---- keepalive, teardown ---------------------------------------------------------------------

    async def feedback(self) -> None:
        """`POST /feedback` every 2 s; the session ends after 3 unanswered in a row."""
        misses = 0
        while not self.loop.stopping:
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
                self.loop.status.emit(Error(ErrorCode.FEEDBACK, "receiver stopped answering"))
                self.loop.stop()

    async def teardown(self, stream_body: bytes | None) -> bool:
        """TEARDOWN the stream (if set up), then the session; close every connection."""
        rtsp, self.rtsp = self.rtsp, None
        if rtsp is not None:
            with contextlib.suppress(RtspClientError, OSError):
                if stream_body is not None:
                    await rtsp.request(
                        "TEARDOWN", self.uri, headers=PLIST_HEADERS, body=stream_body, timeout=2.0
                    )
                body = ap2.teardown_session()
                await rtsp.request(
                    "TEARDOWN", self.uri, headers=PLIST_HEADERS, body=body, timeout=2.0
                )
            await rtsp.close()
        if self.events is not None:
            await self.events.close()
            self.events = None
        await stop_watch(self.clock_watch)
        if self.lease is not None:
            await self.lease.close()
            self.lease = None
        return rtsp is not None

    def close(self) -> None:
        """Release the event channel and the PTP lease (idempotent)."""
        if self.clock_watch is not None:
            self.clock_watch.cancel()
        if self.events is not None:
            self.events.task.cancel()
            self.events.writer.close()
            self.events = None
        if self.lease is not None:
            self.lease.writer.close()
            self.lease = None
