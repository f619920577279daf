"""The RTSP server side of "listen along", no I/O: one `ListenConnection` per TCP connection.

Feed it the bytes a client sends; it returns what to write back (responses) and what happened
(`Play`, `Teardown`). Requests: OPTIONS, DESCRIBE, SETUP (TCP interleaved only), PLAY, PAUSE
(answered, ignored: a live stream), GET_PARAMETER / SET_PARAMETER (keep-alives), TEARDOWN.
A stream is chosen by the request path; `paths` says which exist, `formats` which PCM each
carries (L16/44.1 kHz unless said; L24/48 kHz for a hi-res session). Interleaved frames the client
sends between requests (RTCP receiver reports) are skipped. Message parsing is protocol/rtsp.py's.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from airplay_provider.protocol.errors import AirplayError
from airplay_provider.protocol.pcm_format import CD, PcmFormat
from airplay_provider.protocol.rtp_l16 import payload_type, rtpmap
from airplay_provider.protocol.rtsp import (
    Headers,
    MessageParser,
    Request,
    Response,
    RtspParseError,
    parse_transport,
)

SESSION_TIMEOUT_S: Final = 60  # announced in Session:; clients keep alive every half of it
TRACK: Final = "track1"
PUBLIC: Final = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
SERVER: Final = "airplay-provider listen-along"
MAX_REQUEST_BYTES: Final = 16384

_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
}


class ListenProtocolError(AirplayError):
    """The client sent something that is not RTSP: close the connection."""


@dataclass(frozen=True)
class Play:
    """Start sending `path`'s audio; `packetizer` values are in the PLAY answer's RTP-Info."""

    path: str
    ssrc: int
    first_seq: int
    first_timestamp: int
    channel: int


@dataclass(frozen=True)
class Teardown:
    """The client ended its session: stop sending, close after the answer."""


Event = Play | Teardown


def stream_path(uri: str) -> str:
    """The stream a request URI names: its path without the track suffix or a trailing '/'."""
    path = urlsplit(uri).path if "://" in uri else uri
    path = path.rstrip("/")
    if path.endswith("/" + TRACK):
        path = path[: -len(TRACK) - 1]
    return path or "/"


def describe_sdp(path: str, host: str, pcm_format: PcmFormat = CD) -> bytes:
    """The SDP of a stream: one audio track (L16/44100/2, or L24/48000/2 for a hi-res
    `pcm_format`), its control URL relative."""
    family = "IP6" if ":" in host else "IP4"
    lines = [
        "v=0",
        f"o=- 0 0 IN {family} {host}",
        f"s=airplay-provider {path}",
        f"c=IN {family} {host}",
        "t=0 0",
        "a=control:*",
        "a=recvonly",
        f"m=audio 0 RTP/AVP {payload_type(pcm_format)}",
        f"a=rtpmap:{rtpmap(pcm_format)}",
        f"a=control:{TRACK}",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


class ListenConnection:
    """One client connection's RTSP state: INIT → READY (SETUP) → PLAYING (PLAY) → done."""

    def __init__(
        self,
        paths: Callable[[str], bool],
        *,
        host: str,
        random_bits: Callable[[int], int] = secrets.randbits,
        formats: Callable[[str], PcmFormat] | None = None,
    ) -> None:
        self._exists = paths
        self._format = formats or (lambda _: CD)
        self._host = host
        self._random = random_bits
        self._parser = MessageParser(max_header_bytes=MAX_REQUEST_BYTES, max_body_bytes=4096)
        self._buffer = b""
        self.session_id = f"{random_bits(48):012X}"
        self.path: str | None = None  # set by SETUP
        self.channel = 0
        self.playing = False
        self.closed = False
        self.skipped_frames = 0  # interleaved frames from the client (RTCP reports), ignored

    def feed(self, data: bytes) -> tuple[bytes, list[Event]]:
        """Bytes received; returns (bytes to send, events). ListenProtocolError: not RTSP."""
        self._buffer += data
        out: list[bytes] = []
        events: list[Event] = []
        for request in self._requests():
            response, event = self.handle(request)
            out.append(response.encode())
            if event is not None:
                events.append(event)
            if self.closed:
                break
        return b"".join(out), events

    def _requests(self) -> list[Request]:
        """Split the buffer: interleaved frames (dropped) and RTSP requests."""
        requests: list[Request] = []
        while self._buffer:
            if self._parser.buffered == 0 and self._buffer[:1] == b"$":
                if len(self._buffer) < 4:
                    break
                end = 4 + int.from_bytes(self._buffer[2:4], "big")
                if len(self._buffer) < end:
                    break
                self._buffer = self._buffer[end:]
                self.skipped_frames += 1
                continue
            # up to the next '$' (which starts a frame only between messages)
            cut = self._buffer.find(b"$", 1)
            chunk, self._buffer = (
                (self._buffer, b"") if cut < 0 else (self._buffer[:cut], self._buffer[cut:])
            )
            try:
                messages = self._parser.feed(chunk)
            except RtspParseError as exc:
                raise ListenProtocolError(str(exc)) from exc
            for message in messages:
                if not isinstance(message, Request):
                    raise ListenProtocolError("a response where a request was expected")
                requests.append(message)
            if cut >= 0 and self._parser.buffered:
                # inside a message: that '$' is part of it
                try:
                    done = self._parser.feed(self._buffer[:1])
                except RtspParseError as exc:
                    raise ListenProtocolError(str(exc)) from exc
                requests.extend(m for m in done if isinstance(m, Request))
                self._buffer = self._buffer[1:]
        return requests

    def handle(self, request: Request) -> tuple[Response, Event | None]:
        """The answer to one request, and what it starts or ends."""
        headers = Headers()
        cseq = request.headers.get("CSeq")
        if cseq is not None:
            headers.add("CSeq", cseq)
        headers.add("Server", SERVER)
        method = request.method
        if method == "OPTIONS":
            headers.add("Public", PUBLIC)
            return _answer(200, headers), None
        path = stream_path(request.uri)
        if method == "DESCRIBE":
            if not self._exists(path):
                return _answer(404, headers), None
            base = request.uri if request.uri.endswith("/") else request.uri + "/"
            headers.add("Content-Base", base)
            headers.add("Content-Type", "application/sdp")
            sdp = describe_sdp(path, self._host, self._format(path))
            return _answer(200, headers, sdp), None
        if method == "SETUP":
            return self._setup(request, path, headers)
        if method in ("PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER", "SET_PARAMETER"):
            given = (request.headers.get("Session") or "").split(";")[0].strip()
            if self.path is None or given != self.session_id:
                if method in ("GET_PARAMETER", "SET_PARAMETER") and not given:
                    return _answer(200, headers), None  # a keep-alive before SETUP
                return _answer(454, headers), None
            headers.add("Session", self.session_id)
            if method == "PLAY":
                return self._play(request, headers)
            if method == "TEARDOWN":
                self.playing = False
                self.closed = True
                return _answer(200, headers), Teardown()
            return _answer(200, headers), None  # PAUSE of a live stream; keep-alives
        headers.add("Allow", PUBLIC)
        return _answer(405, headers), None

    def _setup(
        self, request: Request, path: str, headers: Headers
    ) -> tuple[Response, Event | None]:
        if not self._exists(path):
            return _answer(404, headers), None
        if self.path is not None and path != self.path:
            return _answer(459, headers), None  # one stream per connection
        transport = request.headers.get("Transport") or ""
        chosen = _tcp_transport(transport)
        if chosen is None:
            headers.add("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")
            return _answer(461, headers), None
        self.channel = chosen
        self.path = path
        headers.add("Transport", f"RTP/AVP/TCP;unicast;interleaved={chosen}-{chosen + 1}")
        headers.add("Session", f"{self.session_id};timeout={SESSION_TIMEOUT_S}")
        return _answer(200, headers), None

    def _play(self, request: Request, headers: Headers) -> tuple[Response, Event | None]:
        assert self.path is not None
        if self.playing:
            return _answer(200, headers), None  # a second PLAY: already sending
        play = Play(
            path=self.path,
            ssrc=self._random(32),
            first_seq=self._random(16),
            first_timestamp=self._random(32),
            channel=self.channel,
        )
        self.playing = True
        base = request.uri.rstrip("/")
        headers.add("Range", "npt=now-")
        headers.add(
            "RTP-Info",
            f"url={base}/{TRACK};seq={play.first_seq};rtptime={play.first_timestamp}",
        )
        return _answer(200, headers), play


def _tcp_transport(value: str) -> int | None:
    """The first interleaved channel of an acceptable TCP transport offer, else None."""
    for offer in value.split(","):
        spec = offer.strip().split(";")[0].upper()
        if spec != "RTP/AVP/TCP":
            continue
        fields = parse_transport(offer.strip())
        channels = fields.get("interleaved", "0-1").split("-")[0]
        if channels.isdigit() and int(channels) <= 254:
            return int(channels)
    return None


def _answer(status: int, headers: Headers, body: bytes = b"") -> Response:
    return Response(status, _REASONS[status], headers, body)
