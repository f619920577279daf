"""HAP encrypted stream framing: 1024-byte blocks, LE length as AAD, per-direction counters."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .crypto import CONTROL_READ, CONTROL_WRITE, EVENTS_READ, EVENTS_WRITE, hkdf_sha512
from .errors import ChannelError

MAX_BLOCK = 1024
TAG_LENGTH = 16
_COUNTER_LIMIT = 1 << 64


@dataclass(frozen=True)
class ChannelKeys:
    """The two ChaCha20-Poly1305 keys of one connection, seen from one end."""

    encrypt_key: bytes
    decrypt_key: bytes

    def reversed(self) -> ChannelKeys:
        """The same keys seen from the other end."""
        return ChannelKeys(encrypt_key=self.decrypt_key, decrypt_key=self.encrypt_key)


def control_keys(shared_secret: bytes) -> ChannelKeys:
    """Keys of the RTSP connection as the sender (controller) uses them."""
    return ChannelKeys(
        encrypt_key=hkdf_sha512(shared_secret, CONTROL_WRITE),
        decrypt_key=hkdf_sha512(shared_secret, CONTROL_READ),
    )


def event_keys(shared_secret: bytes) -> ChannelKeys:
    """Keys of the reverse event connection as the sender uses them (names swapped)."""
    return ChannelKeys(
        encrypt_key=hkdf_sha512(shared_secret, EVENTS_READ),
        decrypt_key=hkdf_sha512(shared_secret, EVENTS_WRITE),
    )


def _nonce(counter: int) -> bytes:
    return b"\x00\x00\x00\x00" + counter.to_bytes(8, "little")


class ChannelCipher:
    """Sans-I/O framing of one encrypted TCP stream in both directions."""

    def __init__(self, keys: ChannelKeys) -> None:
        self._encryptor = ChaCha20Poly1305(keys.encrypt_key)
        self._decryptor = ChaCha20Poly1305(keys.decrypt_key)
        self._out_counter = 0
        self._in_counter = 0
        self._buffer = bytearray()
        self._broken = False

    @property
    def buffered(self) -> int:
        """Received bytes still waiting for the rest of their block."""
        return len(self._buffer)

    def encrypt(self, plaintext: bytes) -> bytes:
        """Frame and encrypt outgoing bytes (any length; empty input gives empty output)."""
        out = bytearray()
        for start in range(0, len(plaintext), MAX_BLOCK):
            block = plaintext[start : start + MAX_BLOCK]
            if self._out_counter >= _COUNTER_LIMIT:
                raise ChannelError("outgoing block counter exhausted")
            aad = len(block).to_bytes(2, "little")
            out += aad
            out += self._encryptor.encrypt(_nonce(self._out_counter), block, aad)
            self._out_counter += 1
        return bytes(out)

    def decrypt(self, data: bytes) -> bytes:
        """Feed received bytes; return the plaintext of every block now complete."""
        if self._broken:
            raise ChannelError("channel is broken by an earlier bad block")
        self._buffer += data
        out = bytearray()
        while len(self._buffer) >= 2:
            length = int.from_bytes(self._buffer[:2], "little")
            if length > MAX_BLOCK:
                self._broken = True
                raise ChannelError(f"block length {length} exceeds {MAX_BLOCK} (plaintext?)")
            end = 2 + length + TAG_LENGTH
            if len(self._buffer) < end:
                break
            if self._in_counter >= _COUNTER_LIMIT:
                self._broken = True
                raise ChannelError("incoming block counter exhausted")
            aad = bytes(self._buffer[:2])
            try:
                out += self._decryptor.decrypt(
                    _nonce(self._in_counter), bytes(self._buffer[2:end]), aad
                )
            except InvalidTag as exc:
                self._broken = True
                raise ChannelError("bad authentication tag on encrypted block") from exc
            self._in_counter += 1
            del self._buffer[:end]
        return bytes(out)
