"""Sans-I/O core of a strict RAOP (AirPlay 1) receiver emulator, used only by tests.

It speaks plain (unencrypted) RAOP only: an ANNOUNCE carrying ``a=rsaaeskey`` is refused and
no ``Apple-Response`` is given (encryption is covered by the shairport-sync tests). It shares no
code with ``airplay_provider`` on purpose (own RTSP parser, own ALAC escape-frame decoder, own
packet parsing), so it cannot share a bug with the sender it checks.

Feed it RTSP bytes and UDP datagrams together with the receiver's clock (``now``: seconds on
the Unix epoch); it returns what to send and records what it saw. Stream records
(``sync_packets``, audio, timing, loss) describe the most recently ANNOUNCEd stream;
``errors`` and the RTSP records accumulate. Each RTSP method has one handler in a method table
(``_methods``); a handler refuses by raising ``_Refusal``, recorded in one place
(``rtsp_received``).
"""

from __future__ import annotations

import base64
import functools
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from tests.receivers.raop_emulator_stream import RaopStreamReceiver
from tests.receivers.raop_emulator_wire import (
    METHODS,
    RECEIVER_FIXED_DELAY,
    ArtworkRecord,
    Datagram,
    FlushRecord,
    MetadataRecord,
    RequestRecord,
    RtspOutput,
    RtspParser,
    RtspRequest,
    WireError,
    build_response,
    digest_ok,
    int_field,
    parse_dmap,
    parse_key_values,
    parse_parameters,
    parse_sdp,
    parse_transport,
)
from tests.receivers.strict import ErrorLog

# --------------------------------------------------------------------------- receiver state

if TYPE_CHECKING:
    from tests.receivers.ap2_emulator_legacy import LegacyAccessory


@dataclass
class _Connection:
    peer_host: str
    parser: RtspParser = field(default_factory=RtspParser)
    authorized: bool = False
    nonce: str | None = None
    verified: bool = False


class _Refusal(Exception):
    """An RTSP request answered with an error status (recorded as an error unless `challenge`:
    the Digest challenge to a request that carried no credentials yet is the protocol's first
    step, not a refusal of anything the sender did wrong)."""

    def __init__(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]] | None = None,
        *,
        challenge: bool = False,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.headers = headers or []
        self.challenge = challenge


#: One method's handler: (connection id, its state, request, now) → (headers, body) of a 200.
_Handler = Callable[[int, _Connection, RtspRequest, float], tuple[list[tuple[str, str]], bytes]]


class RaopReceiverCore:
    """A strict RAOP receiver as a state machine: RTSP here, the UDP side in ``stream``.

    ``ports`` are the receiver's own (audio, control, timing) UDP ports, announced in SETUP.
    ``audio_latency`` is RECORD's ``Audio-Latency`` answer. The other options go to each new
    :class:`RaopStreamReceiver` (one per ANNOUNCE).
    """

    def __init__(
        self,
        *,
        ports: tuple[int, int, int] = (6000, 6001, 6002),
        password: str | None = None,
        audio_latency: int = RECEIVER_FIXED_DELAY,
        drop_rate: float = 0.0,
        drop_seed: int = 0,
        timing_burst_interval: float = 0.3,
        timing_interval: float = 3.0,
        first_timing_delay: float = 0.0,
        resend_attempts: int = 3,
        resend_interval: float = 0.1,
        legacy_accessory: LegacyAccessory | None = None,
        expect_errors: Iterable[str] = (),
    ) -> None:
        self.ports = ports
        self._password = password
        # When set, the device demands legacy pair-verify (A.17) before it takes a stream.
        self.legacy_accessory = legacy_accessory
        self._audio_latency = audio_latency
        self._conns: dict[int, _Connection] = {}
        self._owner: int | None = None
        self.errors = ErrorLog(expect_errors, unique=True)
        self.requests: list[RequestRecord] = []
        self.volumes: list[float] = []
        self.progress: list[tuple[int, int, int]] = []
        self.metadata: list[MetadataRecord] = []
        self.artwork: list[ArtworkRecord] = []
        self.flushes: list[FlushRecord] = []
        self.teardown_at: float | None = None
        self.state: Literal["idle", "announced", "setup", "recording"] = "idle"
        self._new_stream = functools.partial(
            RaopStreamReceiver,
            drop_rate=drop_rate,
            drop_seed=drop_seed,
            timing_burst_interval=timing_burst_interval,
            timing_interval=timing_interval,
            first_timing_delay=first_timing_delay,
            resend_attempts=resend_attempts,
            resend_interval=resend_interval,
            errors=self.errors,
        )
        self.stream = self._new_stream()
        #: The method table: every method of `METHODS`, one handler each.
        self._methods: dict[str, _Handler] = {
            "OPTIONS": self._on_options,
            "POST": self._on_post,
            "ANNOUNCE": self._on_announce,
            "SETUP": self._on_setup,
            "RECORD": self._on_record,
            "SET_PARAMETER": self._on_set_parameter,
            "GET_PARAMETER": self._on_get_parameter,
            "FLUSH": self._on_flush,
            "TEARDOWN": self._on_teardown,
        }
        assert set(self._methods) == set(METHODS)

    def _error(self, message: str) -> None:
        self.errors.record(message)

    # ------------------------------------------------------------------ RTSP

    def connection_made(self, conn: int, peer_host: str) -> None:
        """A new RTSP connection from ``peer_host``."""
        self._conns[conn] = _Connection(peer_host)

    def connection_lost(self, conn: int, now: float | None = None) -> None:
        """The RTSP connection closed; its session (if any) ends. With `now`, audio read just
        after it (sent before it, a separate socket queue) is in flight, as after TEARDOWN."""
        self._conns.pop(conn, None)
        if self._owner == conn:
            self._end_session(now)

    def rtsp_received(self, conn: int, data: bytes, now: float) -> RtspOutput:
        """Feed bytes from RTSP connection ``conn``; return the responses."""
        connection = self._conns[conn]
        try:
            requests = connection.parser.feed(data)
        except WireError as exc:
            self._error(f"RTSP garbage: {exc}")
            return RtspOutput(build_response(None, 400, [("Connection", "close")], b""), True)
        out = bytearray()
        for request in requests:
            cseq = request.headers.get("cseq")
            close = False
            try:
                if cseq is None:
                    raise _Refusal(400, "missing CSeq")
                if request.method not in METHODS:
                    raise _Refusal(501, f"unknown method {request.method}")
                if self._password is not None and not connection.authorized:
                    self._authorize(connection, request)
                headers, body = self._dispatch(conn, connection, request, now)
                status = 200
                close = request.method == "TEARDOWN"
            except (_Refusal, WireError) as exc:
                refusal = exc if isinstance(exc, _Refusal) else _Refusal(400, str(exc))
                status, headers, body = refusal.status, refusal.headers, b""
                if not refusal.challenge:
                    self._error(f"{request.method} refused with {status}: {refusal}")
            self.requests.append(
                RequestRecord(
                    conn, request.method, request.uri, request.headers, request.body, status, now
                )
            )
            out += build_response(cseq, status, headers, body)
            if close:
                return RtspOutput(bytes(out), True)
        return RtspOutput(bytes(out), False)

    def _post(
        self, conn: int, connection: _Connection, request: RtspRequest
    ) -> tuple[list[tuple[str, str]], bytes]:
        """POST /pair-verify (legacy, raw bodies) on devices that need it; nothing else."""
        if request.uri != "/pair-verify" or self.legacy_accessory is None:
            raise _Refusal(404, f"no POST {request.uri}")
        status, body = self.legacy_accessory.verify(conn, request.body)
        if status != 200:
            raise _Refusal(status, "pair-verify refused")
        if len(request.body) == 68 and request.body[:4] == bytes(4):
            connection.verified = True  # the second message passed the signature check
        return [("Content-Type", "application/octet-stream")], body

    def _authorize(self, connection: _Connection, request: RtspRequest) -> None:
        header = request.headers.get("authorization", "")
        nonce, password = connection.nonce, self._password or ""
        if nonce and digest_ok(header, request.method, request.uri, nonce, password):
            connection.authorized = True
            return
        if connection.nonce is None:
            connection.nonce = base64.b64encode(secrets.token_bytes(8)).decode()
        challenge = f'Digest realm="raop", nonce="{connection.nonce}"'
        first = "authorization" not in request.headers
        reason = "authorization required" if first else "wrong credentials"
        raise _Refusal(401, reason, [("WWW-Authenticate", challenge)], challenge=first)

    def _require(self, conn: int, *states: str) -> None:
        if self._owner is not None and self._owner != conn:
            raise _Refusal(453, "busy with another sender")
        if self._owner is None or self.state not in states:
            raise _Refusal(455, f"not valid in state {self.state}")

    def _dispatch(
        self, conn: int, connection: _Connection, request: RtspRequest, now: float
    ) -> tuple[list[tuple[str, str]], bytes]:
        return self._methods[request.method](conn, connection, request, now)

    # The method table's handlers: (headers, body) of a 200, or raise `_Refusal`.

    def _on_options(
        self, conn: int, connection: _Connection, request: RtspRequest, now: float
    ) -> tuple[list[tuple[str, str]], bytes]:
        return [("Public", ", ".join(METHODS))], b""

    def _on_post(
        self, conn: int, connection: _Connection, request: RtspRequest, now: float
    ) -> tuple[list[tuple[str, str]], bytes]:
        return self._post(conn, connection, request)

    def _on_announce(
        self, conn: int, connection: _Connection, request: RtspRequest, now: float
    ) -> tuple[list[tuple[str, str]], bytes]:
        if self.legacy_accessory is not None and not connection.verified:
            raise _Refusal(403, "pair-verify required before ANNOUNCE")
        if self._owner is not None and self._owner != conn:
            raise _Refusal(453, "busy with another sender")
        if request.headers.get("content-type") != "application/sdp":
            raise _Refusal(400, "ANNOUNCE without Content-Type: application/sdp")
        codec, frame_length = parse_sdp(request.body)
        self.stream.settle()  # its compressed audio is decoded (and checked) before it goes
        self.stream.stop()
        self.stream = self._new_stream(codec=codec, frame_length=frame_length)
        self._owner, self.state = conn, "announced"
        return [], b""

    def _on_setup(
        self, conn: int, connection: _Connection, request: RtspRequest, now: float
    ) -> tuple[list[tuple[str, str]], bytes]:
        self._require(conn, "announced")
        control, timing = parse_transport(request.headers.get("transport", ""))
        self.stream.start(connection.peer_host, control, timing, now)
        self.state = "setup"
        return self._setup_headers(), b""

    def _on_record(
        self, conn: int, connection: _Connection, request: RtspRequest, now: float
    ) -> tuple[list[tuple[str, str]], bytes]:
        self._require(conn, "setup", "recording")
        return self._record(request), b""

    def _on_set_parameter(
        self, conn: int, connection: _Connection, request: RtspRequest, now: float
    ) -> tuple[list[tuple[str, str]], bytes]:
        self._require(conn, "setup", "recording")
        self._set_parameter(request)
        return [], b""

    def _on_get_parameter(
        self, conn: int, connection: _Connection, request: RtspRequest, now: float
    ) -> tuple[list[tuple[str, str]], bytes]:
        self._require(conn, "announced", "setup", "recording")
        if request.body.strip() != b"volume":
            return [], b""
        volume = self.volumes[-1] if self.volumes else -15.0
        return [("Content-Type", "text/parameters")], f"volume: {volume:.6f}\r\n".encode()

    def _on_flush(
        self, conn: int, connection: _Connection, request: RtspRequest, now: float
    ) -> tuple[list[tuple[str, str]], bytes]:
        self._require(conn, "recording")
        self._flush(request, now)
        return [], b""

    def _on_teardown(
        self, conn: int, connection: _Connection, request: RtspRequest, now: float
    ) -> tuple[list[tuple[str, str]], bytes]:
        self._require(conn, "announced", "setup", "recording")
        self.teardown_at = now
        self._end_session(now)
        return [("Connection", "close")], b""

    def _setup_headers(self) -> list[tuple[str, str]]:
        audio, own_control, own_timing = self.ports
        return [
            (
                "Transport",
                "RTP/AVP/UDP;unicast;interleaved=0-1;mode=record;"
                f"server_port={audio};control_port={own_control};timing_port={own_timing}",
            ),
            ("Session", "1"),
            ("Audio-Jack-Status", "connected; type=analog"),
        ]

    def _record(self, request: RtspRequest) -> list[tuple[str, str]]:
        info = request.headers.get("rtp-info")
        seq = rtptime = None
        if info is None:
            self._error("RECORD without RTP-Info")
        else:
            values = parse_key_values(info)
            seq = int_field(values, "seq", 1 << 16)
            rtptime = int_field(values, "rtptime", 1 << 32)
            if seq is None or rtptime is None:
                raise _Refusal(400, f"RECORD RTP-Info lacks seq or rtptime: {info[:80]!r}")
        self.state = "recording"
        self.stream.record(seq, rtptime)
        return [
            ("Audio-Latency", str(self._audio_latency)),
            ("Audio-Jack-Status", "connected; type=analog"),
        ]

    def _set_parameter(self, request: RtspRequest) -> None:
        content_type = request.headers.get("content-type", "")
        info = parse_key_values(request.headers.get("rtp-info", ""))
        rtptime = int_field(info, "rtptime", 1 << 32)
        if content_type == "text/parameters":
            volumes, progress = parse_parameters(request.body)
            self.volumes += volumes
            self.progress += progress
        elif content_type == "application/x-dmap-tagged":
            self.metadata.append(MetadataRecord(rtptime, parse_dmap(request.body)))
        elif content_type.startswith("image/"):
            self.artwork.append(ArtworkRecord(content_type, request.body, rtptime))
        else:
            raise _Refusal(400, f"unsupported SET_PARAMETER content type {content_type!r}")

    def _flush(self, request: RtspRequest, now: float) -> None:
        values = parse_key_values(request.headers.get("rtp-info", ""))
        seq = int_field(values, "seq", 1 << 16)
        rtptime = int_field(values, "rtptime", 1 << 32)
        self.flushes.append(FlushRecord(seq, rtptime, now))
        self.stream.flush(rtptime)

    def _end_session(self, now: float | None = None) -> None:
        self._owner = None
        self.state = "idle"
        self.stream.stop(now)

    # ------------------------------------------------------------------ UDP (to the stream)

    def audio_received(self, data: bytes, now: float) -> list[Datagram]:
        """An audio-port datagram."""
        return self.stream.audio_received(data, now)

    def control_received(self, data: bytes, now: float) -> list[Datagram]:
        """A control-port datagram."""
        return self.stream.control_received(data, now)

    def timing_received(self, data: bytes, now: float) -> None:
        """A timing-port datagram."""
        self.stream.timing_received(data, now)

    def poll(self, now: float) -> list[Datagram]:
        """Datagrams due at ``now`` (timing requests, resend retries)."""
        return self.stream.poll(now)

    def next_deadline(self) -> float | None:
        """When ``poll`` next has something to send."""
        return self.stream.next_deadline()
