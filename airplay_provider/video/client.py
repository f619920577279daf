"""The thin I/O side of AirPlay video: one HTTP connection to the device's AirPlay port,
pair-verified (and from then on encrypted) when credentials are given."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

from airplay_provider.pairing.client import pair_verify
from airplay_provider.protocol.hap.credentials import HapCredentials
from airplay_provider.protocol.hap.errors import ChannelError, HapError, ProtocolViolation
from airplay_provider.protocol.rtsp import Response, RtspError
from airplay_provider.protocol.video import (
    BINARY_PLIST,
    USER_AGENT,
    DevicePlaybackError,
    NeedsPairingError,
    PlaybackInfo,
    UrlPlaybackError,
    parse_playback_info,
    play_body,
    rate_path,
    scrub_path,
)
from airplay_provider.rtsp_connection import RtspConnection

CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 10.0
#: Answers of a device that wants pair-verify first.
AUTH_STATUSES = frozenset({401, 403, 470})
PLAY_ATTEMPTS = 3
PLAY_RETRY_DELAY_S = 1.0


class VideoClient:
    """Requests to one device, one at a time; every failure is a `UrlPlaybackError`."""

    def __init__(self, connection: RtspConnection, name: str) -> None:
        self.connection = connection
        self.name = name
        self.verified = False

    @classmethod
    async def connect(
        cls, addresses: Sequence[str], port: int, name: str, *, session_id: str
    ) -> VideoClient:
        """Connect to the first of `addresses` that answers (all within the connect timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_TIMEOUT_S
        failures = []
        for index, address in enumerate(addresses):
            share = (deadline - loop.time()) / (len(addresses) - index)
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(address, port), max(share, 0.001)
                )
            except (OSError, TimeoutError) as exc:
                failures.append(f"{address}:{port}: {exc!r}")
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            headers = {"User-Agent": USER_AGENT, "X-Apple-Session-ID": session_id}
            connection = RtspConnection(
                reader, writer, protocol="HTTP/1.1", headers=headers, check_cseq=False
            )
            return cls(connection, name)
        raise UrlPlaybackError(f"cannot connect to {name}: {'; '.join(failures) or 'no address'}")

    @property
    def local_address(self) -> str:
        """Our address on the connection: where the device can reach us."""
        return self.connection.local_address

    async def verify(self, credentials: HapCredentials, pairing_id: str) -> None:
        """Pair-verify with the stored credentials; the connection is encrypted afterwards."""
        try:
            self.connection = await pair_verify(
                self.connection, credentials, pairing_id, request_timeout=REQUEST_TIMEOUT_S
            )
        except HapError as exc:
            raise NeedsPairingError(
                f"{self.name} refused the stored pairing ({exc}); pair again with "
                f"`airplay-provider pair`"
            ) from exc
        except (TimeoutError, OSError) as exc:
            raise DevicePlaybackError(f"pair-verify with {self.name} failed: {exc!r}") from exc
        self.verified = True

    async def request(
        self, method: str, path: str, *, body: bytes = b"", content_type: str | None = None
    ) -> Response:
        """One request; a pairing demand becomes `NeedsPairingError`, a lost connection or
        garbled answer `DevicePlaybackError`."""
        headers = {"Content-Type": content_type} if content_type else {}
        try:
            response = await self.connection.request(
                method, path, body=body, headers=headers, request_timeout=REQUEST_TIMEOUT_S
            )
        except TimeoutError as exc:
            raise DevicePlaybackError(f"{self.name} did not answer {method} {path}") from exc
        except (RtspError, ChannelError, ProtocolViolation) as exc:
            raise DevicePlaybackError(f"{self.name} answered {method} {path} badly: {exc}") from exc
        except OSError as exc:
            raise DevicePlaybackError(f"connection to {self.name} lost: {exc}") from exc
        if response.status in AUTH_STATUSES:
            hint = "the stored pairing" if self.verified else "pairing"
            raise NeedsPairingError(
                f"{self.name} demands {hint} ({response.status} {response.reason} to {path}); "
                f"pair first with `airplay-provider pair`"
            )
        return response

    async def _checked(self, method: str, path: str) -> Response:
        response = await self.request(method, path)
        if response.status != 200:
            raise DevicePlaybackError(
                f"{self.name} refused {method} {path}: {response.status} {response.reason}"
            )
        return response

    async def play(self, url: str, start_position: float, session_id: str) -> None:
        """``POST /play``; a 500 (some devices' way to say "not now") is retried."""
        body = play_body(url, start_position, session_id)
        for attempt in range(PLAY_ATTEMPTS):
            response = await self.request("POST", "/play", body=body, content_type=BINARY_PLIST)
            if response.status == 200:
                return
            if response.status != 500 or attempt == PLAY_ATTEMPTS - 1:
                raise DevicePlaybackError(
                    f"{self.name} refused to play the URL: {response.status} {response.reason}"
                )
            await asyncio.sleep(PLAY_RETRY_DELAY_S)

    async def playback_info(self) -> PlaybackInfo:
        """``GET /playback-info``, parsed."""
        response = await self._checked("GET", "/playback-info")
        return parse_playback_info(response.body)

    async def set_rate(self, rate: float) -> None:
        """``POST /rate`` (0 pauses, 1 plays)."""
        await self._checked("POST", rate_path(rate))

    async def scrub(self, position_s: float) -> None:
        """``POST /scrub``: seek to `position_s` seconds."""
        await self._checked("POST", scrub_path(position_s))

    async def stop(self) -> None:
        """``POST /stop``."""
        await self._checked("POST", "/stop")

    async def close(self) -> None:
        """Close the connection (bounded)."""
        await self.connection.close(1.0)
