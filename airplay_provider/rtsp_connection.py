"""One RTSP (or HTTP) client connection: CSeq numbering, incremental parsing, per-request
timeouts, and hooks for a framing cipher. The only request/response loop in the package:
the streamers' `RtspClient` and the pairing client both drive one of these."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping

from airplay_provider.protocol.hap.errors import ProtocolViolation
from airplay_provider.protocol.rtsp import Headers, MessageParser, Request, Response

DEFAULT_TIMEOUT = 10.0


class RtspConnection:
    """Sends one request at a time and returns its response.

    Raises TimeoutError (no answer in time), ConnectionResetError (closed),
    `RtspParseError` (malformed answer) and `ProtocolViolation` (a request instead of a
    response, or — with `check_cseq` — a response to another request).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        protocol: str = "RTSP/1.0",
        headers: Mapping[str, str] | None = None,
        cseq: int = 0,
        check_cseq: bool = True,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = protocol
        self.base_headers = dict(headers or {})
        self.cseq = cseq
        self.check_cseq = check_cseq
        self._parser = MessageParser()
        self._responses: deque[Response] = deque()

    def _encode(self, data: bytes) -> bytes:
        return data

    def _decode(self, data: bytes) -> bytes:
        return data

    def idle(self) -> bool:
        """True when nothing received is still waiting to be read."""
        return not self._responses and self._parser.buffered == 0

    async def request(
        self,
        method: str,
        uri: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        request_timeout: float = DEFAULT_TIMEOUT,
    ) -> Response:
        """Send one request and wait (at most `request_timeout` s) for its response."""
        self.cseq += 1
        all_headers = Headers({**self.base_headers, **(headers or {})})
        all_headers.set("CSeq", str(self.cseq))
        request = Request(method, uri, all_headers, body, self.protocol)
        async with asyncio.timeout(request_timeout):
            self.writer.write(self._encode(request.encode()))
            await self.writer.drain()
            response = await self._next_response()
        cseq = response.headers.get("CSeq")
        if self.check_cseq and cseq is not None and cseq.strip() != str(self.cseq):
            raise ProtocolViolation(f"response CSeq {cseq} does not match request {self.cseq}")
        return response

    async def _next_response(self) -> Response:
        while not self._responses:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionResetError("connection closed by the receiver")
            for message in self._parser.feed(self._decode(data)):
                if not isinstance(message, Response):
                    raise ProtocolViolation("receiver sent a request on the control connection")
                self._responses.append(message)
        return self._responses.popleft()

    @property
    def local_address(self) -> str:
        """Our address on this connection."""
        return str(self.writer.get_extra_info("sockname")[0])

    @property
    def peer_address(self) -> str:
        """The receiver's address on this connection."""
        return str(self.writer.get_extra_info("peername")[0])

    async def close(self, close_timeout: float = 2.0) -> None:
        """Close the TCP connection (bounded wait)."""
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(close_timeout):
                await self.writer.wait_closed()
