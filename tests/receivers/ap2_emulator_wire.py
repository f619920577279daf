"""Wire layer of the AirPlay 2 emulator: requests and responses, the incremental request parser,
and the accessory's end of the HAP channel framing (no I/O, no state beyond one connection)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAX_HEAD = 16384
MAX_BODY = 1 << 20


def hkdf(ikm: bytes, salt: str, info: str) -> bytes:
    """HKDF-SHA512, 32 bytes (the HAP key schedule)."""
    return HKDF(hashes.SHA512(), 32, salt.encode(), info.encode()).derive(ikm)


@dataclass
class EmuRequest:
    """A parsed request (header names lower-cased)."""

    method: str
    path: str
    protocol: str
    headers: dict[str, str]
    body: bytes


@dataclass
class EmuResponse:
    """A response before encoding."""

    status: int
    reason: str = "OK"
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    expected: bool = False  # a refusal the protocol has a sender handle (retry): not recorded


class BadRequest(Exception):
    """The peer sent bytes that are not a valid request."""


class RequestParser:
    """Minimal incremental RTSP/HTTP request parser of the emulator."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[EmuRequest]:
        self.buffer += data
        requests: list[EmuRequest] = []
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    raise BadRequest("header too long")
                return requests
            try:
                lines = self.buffer[:end].decode("ascii").split("\r\n")
            except UnicodeDecodeError as exc:
                raise BadRequest("non-ASCII header") from exc
            parts = lines[0].split(" ")
            if len(parts) != 3 or parts[2] not in ("RTSP/1.0", "HTTP/1.1", "HTTP/1.0"):
                raise BadRequest(f"bad request line {lines[0][:60]!r}")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep or not name or name != name.strip():
                    raise BadRequest("bad header line")
                headers[name.lower()] = value.strip()
            length_text = headers.get("content-length", "0")
            if not length_text.isdigit() or int(length_text) > MAX_BODY:
                raise BadRequest("bad Content-Length")
            total = end + 4 + int(length_text)
            if len(self.buffer) < total:
                return requests
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            requests.append(EmuRequest(parts[0], parts[1], parts[2], headers, body))


class EmuFraming:
    """The accessory's own HAP channel framing (reads Control-Write, writes Control-Read)."""

    def __init__(self, shared: bytes, *, events: bool = False) -> None:
        """Control-connection keys, or (``events``) the accessory's end of the event channel."""
        salt, kind = ("Events-Salt", "Events") if events else ("Control-Salt", "Control")
        out_info, in_info = ("Write", "Read") if events else ("Read", "Write")
        self._out = ChaCha20Poly1305(hkdf(shared, salt, f"{kind}-{out_info}-Encryption-Key"))
        self._in = ChaCha20Poly1305(hkdf(shared, salt, f"{kind}-{in_info}-Encryption-Key"))
        self._out_count = 0
        self._in_count = 0
        self._pending = bytearray()

    def seal(self, data: bytes) -> bytes:
        out = b""
        for pos in range(0, len(data), 1024):
            chunk = data[pos : pos + 1024]
            size = len(chunk).to_bytes(2, "little")
            nonce = bytes(4) + self._out_count.to_bytes(8, "little")
            out += size + self._out.encrypt(nonce, chunk, size)
            self._out_count += 1
        return out

    def open(self, data: bytes) -> bytes:
        """Decrypt complete blocks; raises BadRequest on a bad length or tag."""
        self._pending += data
        out = b""
        while len(self._pending) >= 2:
            size = int.from_bytes(self._pending[:2], "little")
            if size > 1024:
                raise BadRequest("block too long: plaintext after pairing?")
            if len(self._pending) < size + 18:
                break
            nonce = bytes(4) + self._in_count.to_bytes(8, "little")
            try:
                out += self._in.decrypt(
                    nonce, bytes(self._pending[2 : size + 18]), self._pending[:2]
                )
            except InvalidTag as exc:
                raise BadRequest("bad tag") from exc
            self._in_count += 1
            del self._pending[: size + 18]
        return out
