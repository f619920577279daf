"""Asyncio driver of the HAP / legacy pairing state machines over one RTSP connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

from .protocol.hap.channel import ChannelCipher, ChannelKeys, control_keys
from .protocol.hap.credentials import HapCredentials, LegacyCredentials
from .protocol.hap.errors import HttpStatusError, ProtocolViolation, TlvError
from .protocol.hap.flow import PairingFlow, ResultT
from .protocol.hap.legacy import LegacyPairSetup, LegacyPairVerify
from .protocol.hap.pair_setup import HKP_NORMAL, PairSetup
from .protocol.hap.pair_verify import PairVerify
from .protocol.hap.tlv8 import decode_tlv, raise_on_error
from .protocol.rtsp import Headers, MessageParser, Request, Response

DEFAULT_TIMEOUT = 10.0
PIN_TIMEOUT = 30.0
OCTET_STREAM = "application/octet-stream"
PinProvider = Callable[[], Awaitable[str]]


class RtspConnection:
    """One RTSP (or HTTP) client connection: CSeq numbering, parsing, per-request timeouts."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        protocol: str = "RTSP/1.0",
        headers: Mapping[str, str] | None = None,
        cseq: int = 0,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.protocol = protocol
        self.base_headers = dict(headers or {})
        self.cseq = cseq
        self._parser = MessageParser()
        self._responses: deque[Response] = deque()

    def _encode(self, data: bytes) -> bytes:
        return data

    def _decode(self, data: bytes) -> bytes:
        return data

    def _idle(self) -> bool:
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
        """Send one request and wait (at most ``request_timeout`` s) for its response."""
        self.cseq += 1
        all_headers = Headers({**self.base_headers, **(headers or {})})
        all_headers.set("CSeq", str(self.cseq))
        request = Request(method, uri, all_headers, body, self.protocol)
        async with asyncio.timeout(request_timeout):
            self._writer.write(self._encode(request.encode()))
            await self._writer.drain()
            response = await self._next_response()
        cseq = response.headers.get("CSeq")
        if cseq is not None and cseq.strip() != str(self.cseq):
            raise ProtocolViolation(f"response CSeq {cseq} does not match request {self.cseq}")
        return response

    async def _next_response(self) -> Response:
        while not self._responses:
            data = await self._reader.read(65536)
            if not data:
                raise ConnectionResetError("connection closed by the receiver")
            for message in self._parser.feed(self._decode(data)):
                if not isinstance(message, Response):
                    raise ProtocolViolation("receiver sent a request on the control connection")
                self._responses.append(message)
        return self._responses.popleft()

    async def close(self, close_timeout: float = 2.0) -> None:
        """Close the TCP connection."""
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(close_timeout):
                await self._writer.wait_closed()


class EncryptedConnection(RtspConnection):
    """The same connection after pairing: every byte framed by the HAP channel cipher."""

    def __init__(self, plain: RtspConnection, shared_secret: bytes) -> None:
        if not plain._idle():
            raise ProtocolViolation("receiver sent unexpected bytes before encryption started")
        super().__init__(
            plain._reader,
            plain._writer,
            protocol=plain.protocol,
            headers=plain.base_headers,
            cseq=plain.cseq,
        )
        self.shared_secret = shared_secret
        self.keys: ChannelKeys = control_keys(shared_secret)
        self._cipher = ChannelCipher(self.keys)

    def _encode(self, data: bytes) -> bytes:
        return self._cipher.encrypt(data)

    def _decode(self, data: bytes) -> bytes:
        return self._cipher.decrypt(data)


async def _run_flow(
    connection: RtspConnection,
    flow: PairingFlow[ResultT],
    *,
    content_type: str,
    hkp: int | None,
    request_timeout: float,
) -> ResultT:
    headers = {"Content-Type": content_type}
    if hkp is not None:
        headers["X-Apple-HKP"] = str(hkp)
    body: bytes | None = flow.start()
    while body is not None:
        response = await connection.request(
            "POST", flow.path, body=body, headers=headers, request_timeout=request_timeout
        )
        if response.status != 200:
            if hkp is not None and response.body:
                with contextlib.suppress(TlvError):
                    raise_on_error(decode_tlv(response.body))
            raise HttpStatusError(response.status, response.reason)
        body = flow.handle(response.body)
    return flow.result


async def request_pin(
    connection: RtspConnection,
    *,
    hkp: int | None = HKP_NORMAL,
    request_timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """``POST /pair-pin-start``: ask the receiver to display its PIN."""
    headers = {"X-Apple-HKP": str(hkp)} if hkp is not None else {}
    response = await connection.request(
        "POST", "/pair-pin-start", headers=headers, request_timeout=request_timeout
    )
    if response.status != 200:
        raise HttpStatusError(response.status, response.reason)


async def transient_pair(
    connection: RtspConnection, *, request_timeout: float = DEFAULT_TIMEOUT
) -> EncryptedConnection:
    """Transient pair-setup (PIN 3939); returns the connection, now encrypted."""
    flow = PairSetup.transient()
    result = await _run_flow(
        connection, flow, content_type=OCTET_STREAM, hkp=flow.hkp, request_timeout=request_timeout
    )
    return EncryptedConnection(connection, result.session_key)


async def pair_verify(
    connection: RtspConnection,
    credentials: HapCredentials,
    identifier: str,
    *,
    request_timeout: float = DEFAULT_TIMEOUT,
) -> EncryptedConnection:
    """Pair-verify with stored credentials; returns the connection, now encrypted."""
    flow = PairVerify(credentials, identifier)
    result = await _run_flow(
        connection, flow, content_type=OCTET_STREAM, hkp=flow.hkp, request_timeout=request_timeout
    )
    return EncryptedConnection(connection, result.shared_secret)


async def pin_pair_setup(
    connection: RtspConnection,
    identifier: str,
    pin_provider: PinProvider,
    *,
    seed: bytes | None = None,
    request_timeout: float = PIN_TIMEOUT,
) -> HapCredentials:
    """``/pair-pin-start`` then PIN pair-setup M1-M6; returns the credentials to store."""
    await request_pin(connection, request_timeout=request_timeout)
    pin = await pin_provider()
    flow = PairSetup.with_pin(pin, identifier, seed=seed)
    result = await _run_flow(
        connection, flow, content_type=OCTET_STREAM, hkp=flow.hkp, request_timeout=request_timeout
    )
    if result.credentials is None:  # pragma: no cover - a PIN flow always yields them
        raise ProtocolViolation("pair-setup ended without credentials")
    return result.credentials


async def legacy_pin_pair_setup(
    connection: RtspConnection,
    pin_provider: PinProvider,
    *,
    credentials: LegacyCredentials | None = None,
    request_timeout: float = PIN_TIMEOUT,
) -> LegacyCredentials:
    """Legacy RAOP: ``/pair-pin-start`` then ``/pair-setup-pin``; returns the credentials."""
    await request_pin(connection, hkp=None, request_timeout=request_timeout)
    pin = await pin_provider()
    flow = LegacyPairSetup(pin, credentials)
    return await _run_flow(
        connection, flow, content_type=flow.content_type, hkp=None, request_timeout=request_timeout
    )


async def legacy_pair_verify(
    connection: RtspConnection,
    credentials: LegacyCredentials,
    *,
    request_timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Legacy RAOP ``/pair-verify``; RTSP continues in clear on the same connection."""
    flow = LegacyPairVerify(credentials)
    await _run_flow(
        connection, flow, content_type=flow.content_type, hkp=None, request_timeout=request_timeout
    )
