"""Asyncio driver of the HAP / legacy pairing state machines over one RTSP connection."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from airplay_provider.protocol.hap.channel import ChannelCipher, ChannelKeys, control_keys
from airplay_provider.protocol.hap.credentials import HapCredentials, LegacyCredentials
from airplay_provider.protocol.hap.errors import HttpStatusError, ProtocolViolation, TlvError
from airplay_provider.protocol.hap.flow import PairingFlow, ResultT
from airplay_provider.protocol.hap.legacy import LegacyPairSetup, LegacyPairVerify
from airplay_provider.protocol.hap.pair_setup import HKP_NORMAL, PairSetup
from airplay_provider.protocol.hap.pair_verify import PairVerify
from airplay_provider.protocol.hap.tlv8 import decode_tlv, raise_on_error
from airplay_provider.rtsp_connection import DEFAULT_TIMEOUT, RtspConnection

PIN_TIMEOUT = 30.0
OCTET_STREAM = "application/octet-stream"
PinProvider = Callable[[], Awaitable[str]]


class EncryptedConnection(RtspConnection):
    """The same connection after pairing: every byte framed by the HAP channel cipher."""

    def __init__(self, plain: RtspConnection, shared_secret: bytes) -> None:
        if not plain.idle():
            raise ProtocolViolation("receiver sent unexpected bytes before encryption started")
        super().__init__(
            plain.reader,
            plain.writer,
            protocol=plain.protocol,
            headers=plain.base_headers,
            cseq=plain.cseq,
            check_cseq=plain.check_cseq,
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
