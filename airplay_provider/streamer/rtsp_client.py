"""The streamers' RTSP session: connect with clear errors, Session/Digest headers, one request
at a time, every failure turned into an `RtspClientError` with a short machine code."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from airplay_provider.protocol.hap.errors import ChannelError, ProtocolViolation
from airplay_provider.protocol.rtsp import (
    Response,
    RtspError,
    digest_authorization,
    parse_www_authenticate,
)
from airplay_provider.protocol.streamer_status import ErrorCode, StreamerError
from airplay_provider.rtsp_connection import RtspConnection

USER_AGENT = "AirPlay/550.10"


class RtspClientError(StreamerError):
    """The receiver could not be reached or did not speak RTSP; `code` says how."""


@dataclass
class DigestState:
    """Digest credentials learned from a 401 challenge."""

    username: str
    password: str
    realm: str
    nonce: str


class RtspClient:
    """A connected RTSP session to one receiver.

    `connection` does the wire work; after HAP pairing (AirPlay 2) it is replaced by the
    encrypted connection on the same socket, so later requests go through the channel cipher.
    """

    def __init__(
        self,
        connection: RtspConnection,
        *,
        timeout: float = 5.0,
        password: str | None = None,
    ) -> None:
        self.connection = connection
        self.timeout = timeout
        self.password = password
        self.digest: DigestState | None = None
        self.session: str | None = None
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        timeout: float = 5.0,
        bind_address: str | None = None,
        common_headers: dict[str, str] | None = None,
        password: str | None = None,
        fallbacks: Sequence[str] = (),
    ) -> RtspClient:
        """Open the TCP connection to `host`, else to each of `fallbacks` in turn (the other
        addresses of the same receiver), all within `timeout`; the error names every try."""
        candidates = list(dict.fromkeys([host, *fallbacks]))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        failures: list[RtspClientError] = []
        for index, address in enumerate(candidates):
            # Each try gets an equal share of what is left, so a silent first address still
            # leaves time for the others.
            share = (deadline - loop.time()) / (len(candidates) - index)
            try:
                reader, writer = await _open(address, port, share, bind_address)
                break
            except RtspClientError as exc:
                failures.append(exc)
        else:
            if len(failures) == 1:
                raise failures[0]
            tried = "; ".join(str(f) for f in failures)
            raise RtspClientError(failures[0].code, bounded(f"no address answered: {tried}"))
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Some receivers (Airfoil, Reflector) echo CSeq wrongly; one request is in flight at a
        # time, so the sender does not need the check (the pairing client keeps it).
        connection = RtspConnection(reader, writer, headers=common_headers, check_cseq=False)
        return cls(connection, timeout=timeout, password=password)

    @property
    def common_headers(self) -> dict[str, str]:
        """Headers sent with every request (User-Agent, DACP-ID, Active-Remote, ...)."""
        return self.connection.base_headers

    @property
    def local_address(self) -> str:
        """Our address on this connection."""
        return self.connection.local_address

    @property
    def peer_address(self) -> str:
        """The receiver's address on this connection."""
        return self.connection.peer_address

    async def request(
        self,
        method: str,
        uri: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        timeout: float | None = None,
    ) -> Response:
        """Send one request and wait for its response; retries once with Digest on a 401."""
        async with self._lock:
            response = await self._exchange(method, uri, headers, body, timeout)
            if response.status == 401 and self.password is not None and self.digest is None:
                challenge = parse_www_authenticate(response.headers.get("WWW-Authenticate") or "")
                if challenge.get("scheme", "").lower() == "digest" and "nonce" in challenge:
                    realm = challenge.get("realm", "raop")
                    self.digest = DigestState(
                        username="iTunes" if realm == "raop" else "AirPlay",
                        password=self.password,
                        realm=realm,
                        nonce=challenge["nonce"],
                    )
                    response = await self._exchange(method, uri, headers, body, timeout)
            return response

    async def _exchange(
        self,
        method: str,
        uri: str,
        extra: dict[str, str] | None,
        body: bytes,
        timeout: float | None,
    ) -> Response:
        headers: dict[str, str] = {}
        if self.session is not None:
            headers["Session"] = self.session
        if self.digest is not None:
            headers["Authorization"] = digest_authorization(
                method=method,
                uri=uri,
                username=self.digest.username,
                password=self.digest.password,
                realm=self.digest.realm,
                nonce=self.digest.nonce,
            )
        headers.update(extra or {})
        limit = timeout or self.timeout
        try:
            return await self.connection.request(
                method, uri, body=body, headers=headers, request_timeout=limit
            )
        except TimeoutError as exc:
            raise RtspClientError(ErrorCode.TIMEOUT, f"{method}: no answer in {limit:g} s") from exc
        except (RtspError, ChannelError, ProtocolViolation) as exc:
            raise RtspClientError(
                ErrorCode.BAD_RESPONSE, f"{method}: malformed answer: {exc}"
            ) from exc
        except (ConnectionError, OSError) as exc:
            raise RtspClientError(
                ErrorCode.CONNECTION_LOST, f"{method}: connection lost: {exc}"
            ) from exc

    def lost(self) -> str | None:
        """Between requests: "closed" when the receiver closed the connection (EOF), "reset"
        when it reset it; None while it is open (or a request is running: that one reports)."""
        if self._lock.locked():
            return None
        reader = self.connection.reader
        if reader.exception() is not None:
            return "reset"
        if reader.at_eof():
            return "closed"
        if self.connection.writer.transport.is_closing():
            return "reset"
        return None

    async def close(self) -> None:
        """Close the connection (bounded wait)."""
        await self.connection.close(1.0)


async def _open(
    host: str, port: int, timeout: float, bind_address: str | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """One TCP connection attempt, bounded by `timeout`, errors as `RtspClientError`."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    local = (bind_address, 0) if bind_address else None
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=local), max(timeout, 0.001)
        )
    except TimeoutError as exc:
        raise RtspClientError(
            ErrorCode.TIMEOUT, f"no answer from {where} in {timeout:.3g} s"
        ) from exc
    except ConnectionRefusedError as exc:
        raise RtspClientError(ErrorCode.REFUSED, f"{where} refused the connection") from exc
    except socket.gaierror as exc:
        raise RtspClientError(ErrorCode.UNKNOWN_HOST, f"cannot resolve {host!r}: {exc}") from exc
    except OSError as exc:
        raise RtspClientError(
            ErrorCode.CONNECT_FAILED, f"cannot connect to {where}: {exc}"
        ) from exc


def bounded(message: str, limit: int = 400) -> str:
    """At most `limit` characters of `message` (a status line stays one short line)."""
    return message if len(message) <= limit else message[: limit - 1] + "…"
