"""AirPlay 2 control-connection steps: `GET /info`, choosing and running pairing, event channel.

Pairing reuses the HAP drivers of `pairing.client` on the RTSP connection's own streams; once it
succeeds, the `RtspClient` gets the control `ChannelCipher` and every later request is encrypted.
"""

from __future__ import annotations

import asyncio
import contextlib
import plistlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from airplay_provider.pairing.client import (
    pair_verify,
    pin_pair_setup,
    transient_pair,
)
from airplay_provider.protocol.hap.channel import ChannelCipher, event_keys
from airplay_provider.protocol.hap.credentials import HapCredentials
from airplay_provider.protocol.hap.errors import (
    AuthenticationError,
    ChannelError,
    HapError,
    HttpStatusError,
)
from airplay_provider.protocol.rtsp import Headers, MessageParser, Request, Response, RtspError
from airplay_provider.protocol.streamer_status import ErrorCode, StreamerError
from airplay_provider.protocol.txt import PAIRING_FLAGS, Feature, has_feature
from airplay_provider.streamer.rtsp_client import RtspClient

PAIRING_TIMEOUT_S = 10.0
PIN_WAIT_S = 60.0
EVENT_CONNECT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class ReceiverInfo:
    """What `GET /info` told us."""

    features: int
    status_flags: int
    device_id: str
    model: str

    @property
    def supports_ptp(self) -> bool:
        """Feature bit 41."""
        return has_feature(self.features, Feature.PTP)

    @property
    def wants_pin(self) -> bool:
        """PIN or one-time pairing demanded (status flags 0x8 / 0x200)."""
        return bool(self.status_flags & PAIRING_FLAGS)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


async def get_info(rtsp: RtspClient, txt_features: int) -> ReceiverInfo:
    """`GET /info` in clear; falls back to the TXT features when the reply is unusable."""
    response = await rtsp.request("GET", "/info", headers={"X-Apple-ProtocolVersion": "1"})
    info: dict[str, object] = {}
    if response.status == 200 and response.body:
        with contextlib.suppress(Exception):
            loaded = plistlib.loads(response.body)
            if isinstance(loaded, dict):
                info = loaded
    return ReceiverInfo(
        features=_int(info.get("features")) or txt_features,
        status_flags=_int(info.get("statusFlags")),
        device_id=str(info.get("deviceID", "")),
        model=str(info.get("model", "")),
    )


PinSource = Callable[[], Awaitable[str]]


async def pair(
    rtsp: RtspClient,
    info: ReceiverInfo,
    *,
    credentials: HapCredentials | None,
    pairing_id: str,
    pin_source: PinSource | None,
) -> tuple[bytes, str, HapCredentials | None]:
    """Pair and switch `rtsp` to encryption; returns (shared secret, method, new credentials).

    Stored credentials → pair-verify; a device demanding a PIN → PIN pair-setup then verify;
    otherwise transient. A transient refusal (470 or an error TLV) falls back to the PIN path.
    """
    plain = rtsp.connection
    method = "verify" if credentials else ("pin" if info.wants_pin else "transient")
    new_credentials = None
    try:
        if credentials is None and method == "transient":
            try:
                encrypted = await transient_pair(plain, request_timeout=PAIRING_TIMEOUT_S)
            except (HttpStatusError, AuthenticationError) as exc:
                if isinstance(exc, HttpStatusError) and exc.status not in (470, 403):
                    raise
                method = "pin"  # transient refused: the device wants a PIN
        if method == "pin":
            if pin_source is None:
                raise StreamerError(
                    ErrorCode.PIN_REQUIRED, "receiver demands a PIN; no --command_pipe"
                )
            credentials = new_credentials = await pin_pair_setup(
                plain, pairing_id, _bounded(pin_source)
            )
        if method != "transient":
            assert credentials is not None
            encrypted = await pair_verify(
                plain, credentials, pairing_id, request_timeout=PAIRING_TIMEOUT_S
            )
    except HapError as exc:
        raise StreamerError(ErrorCode.PAIRING_FAILED, f"{method} pairing failed: {exc}") from exc
    except (TimeoutError, ConnectionError, OSError) as exc:
        raise StreamerError(ErrorCode.PAIRING_FAILED, f"{method} pairing failed: {exc!r}") from exc
    rtsp.connection = encrypted  # same socket; every later request is framed and encrypted
    return encrypted.shared_secret, method, new_credentials


def _bounded(pin_source: PinSource) -> PinSource:
    async def bounded() -> str:
        try:
            return await asyncio.wait_for(pin_source(), PIN_WAIT_S)
        except TimeoutError as exc:
            raise StreamerError(ErrorCode.PIN_REQUIRED, "no PIN= command arrived in time") from exc

    return bounded


class EventChannel:
    """The reverse, encrypted connection to the receiver's eventPort; answers each request 200."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secret: bytes):
        self.reader = reader
        self.writer = writer
        self.cipher = ChannelCipher(event_keys(secret))
        self.parser = MessageParser()
        self.received: list[Request] = []
        self.task: asyncio.Task[None] = asyncio.ensure_future(self._serve())

    @classmethod
    async def open(cls, host: str, port: int, secret: bytes) -> EventChannel:
        """Connect (bounded); StreamerError when the receiver does not accept."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), EVENT_CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            raise StreamerError(
                ErrorCode.EVENT_CHANNEL, f"cannot open event channel: {exc!r}"
            ) from exc
        return cls(reader, writer, secret)

    async def _serve(self) -> None:
        with contextlib.suppress(ConnectionError, OSError, ChannelError, RtspError):
            while data := await self.reader.read(65536):
                for message in self.parser.feed(self.cipher.decrypt(data)):
                    if isinstance(message, Request):
                        self.received.append(message)
                        headers = Headers({"Content-Length": "0"})
                        cseq = message.headers.get("CSeq")
                        if cseq is not None:
                            headers.set("CSeq", cseq)
                        reply = Response(200, "OK", headers).encode()
                        self.writer.write(self.cipher.encrypt(reply))

    async def close(self) -> None:
        """Stop answering and close the connection."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
