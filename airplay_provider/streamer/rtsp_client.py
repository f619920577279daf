"""An RTSP client connection: one request at a time, every wait bounded by a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airplay_provider.protocol.hap.errors import ChannelError
from airplay_provider.protocol.rtsp import (
    Headers,
    MessageParser,
    Request,
    Response,
    RtspError,
    digest_authorization,
    parse_www_authenticate,
)

if TYPE_CHECKING:  # the cipher (and cryptography) is only loaded by AirPlay 2 sessions
    from airplay_provider.protocol.hap.channel import ChannelCipher

USER_AGENT = "AirPlay/550.10"


class RtspClientError(Exception):
    """The receiver could not be reached or did not speak RTSP; `code` is a short tag."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class DigestState:
    """Digest credentials learned from a 401 challenge."""

    username: str
    password: str
    realm: str
    nonce: str


@dataclass
class RtspClient:
    """A connected RTSP session to one receiver."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    common_headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 5.0
    password: str | None = None
    digest: DigestState | None = None
    cseq: int = 0
    session: str | None = None
    cipher: ChannelCipher | None = None
    """Set once HAP pairing succeeded (AirPlay 2): every byte is then framed and encrypted."""
    _parser: MessageParser = field(default_factory=MessageParser)
    _pending: list[Response] = field(default_factory=list)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

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
    ) -> RtspClient:
        """Open the TCP connection (bounded by `timeout`)."""
        local = (bind_address, 0) if bind_address else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=local), timeout
            )
        except TimeoutError as exc:
            raise RtspClientError(
                "timeout", f"no answer from {host}:{port} in {timeout:g} s"
            ) from exc
        except ConnectionRefusedError as exc:
            raise RtspClientError("refused", f"{host}:{port} refused the connection") from exc
        except socket.gaierror as exc:
            raise RtspClientError("unknown_host", f"cannot resolve {host!r}: {exc}") from exc
        except OSError as exc:
            raise RtspClientError(
                "connect_failed", f"cannot connect to {host}:{port}: {exc}"
            ) from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(
            reader=reader,
            writer=writer,
            common_headers=dict(common_headers or {}),
            timeout=timeout,
            password=password,
        )

    @property
    def local_address(self) -> str:
        """Our address on this connection."""
        return str(self.writer.get_extra_info("sockname")[0])

    @property
    def peer_address(self) -> str:
        """The receiver's address on this connection."""
        return str(self.writer.get_extra_info("peername")[0])

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
        self.cseq += 1
        headers = Headers()
        headers.add("CSeq", str(self.cseq))
        for name, value in self.common_headers.items():
            headers.add(name, value)
        if self.session is not None:
            headers.add("Session", self.session)
        if self.digest is not None:
            headers.add(
                "Authorization",
                digest_authorization(
                    method=method,
                    uri=uri,
                    username=self.digest.username,
                    password=self.digest.password,
                    realm=self.digest.realm,
                    nonce=self.digest.nonce,
                ),
            )
        for name, value in (extra or {}).items():
            headers.add(name, value)
        data = Request(method=method, uri=uri, headers=headers, body=body).encode()
        try:
            self.writer.write(self.cipher.encrypt(data) if self.cipher is not None else data)
            await asyncio.wait_for(self.writer.drain(), timeout or self.timeout)
            return await asyncio.wait_for(self._read_response(), timeout or self.timeout)
        except TimeoutError as exc:
            raise RtspClientError(
                "timeout", f"{method}: no answer in {timeout or self.timeout:g} s"
            ) from exc
        except (RtspError, ChannelError) as exc:
            raise RtspClientError("bad_response", f"{method}: malformed answer: {exc}") from exc
        except (ConnectionError, OSError) as exc:
            raise RtspClientError("connection_lost", f"{method}: connection lost: {exc}") from exc

    async def _read_response(self) -> Response:
        while not self._pending:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionResetError("receiver closed the connection")
            if self.cipher is not None:
                data = self.cipher.decrypt(data)
            for message in self._parser.feed(data):
                if not isinstance(message, Response):
                    raise RtspClientError("bad_response", "receiver sent a request, not a response")
                self._pending.append(message)
        return self._pending.pop(0)

    async def close(self) -> None:
        """Close the connection (bounded wait)."""
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
