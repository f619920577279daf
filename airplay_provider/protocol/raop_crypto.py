"""RAOP crypto (docs/protocol.md A.4, A.6): RSA-OAEP key transport and per-packet AES-128-CBC."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from airplay_provider.protocol.errors import AirplayError
from airplay_provider.protocol.sdp import b64_nopad

# The AirPort Express public key every RAOP receiver holds the private half of.
AIRPORT_RSA_MODULUS = int(
    "e7d744f2a2e2788b6c1f55a08eb70544a8fa7945aa8be6c62ce5f51cbdd4dc68"
    "42fe3d1083dd2edec1bfd4252dc02e6f398bdf0e6148ea84855e2e442da6d626"
    "64f674a1f304929ade4f6893ef2df6e711a8c77a0d91c9d980822e50d12922af"
    "ea40ea9f0e14c0f76938c5f3882fc0323dd9fe55155f51bb5921c201629fd733"
    "52d5e2efaabf9ba048d7b813a2b6767f6c3ccf1eb4ce673d037b0d2ea30c5fff"
    "eb06f8d08adde409571a9c689fef10728855dd8cfb9a8bef5c8943ef3b5faa15"
    "dde698beddf3599603eb3e6f61372bb628f6559f599a78bf500687aa7f4976c0"
    "562d412956f8989e18a6355bd81597825e0fc875343ec782117625cdbf98447b",
    16,
)
AIRPORT_RSA_EXPONENT = 65537
AES_KEY_BYTES = 16
AES_BLOCK_BYTES = 16
CHALLENGE_BYTES = 16


class RaopCryptoError(AirplayError, ValueError):
    """A key, IV or challenge of the wrong size."""


def airport_public_key() -> rsa.RSAPublicKey:
    """The AirPort Express RSA public key object."""
    return rsa.RSAPublicNumbers(AIRPORT_RSA_EXPONENT, AIRPORT_RSA_MODULUS).public_key()


def rsa_encrypt_aes_key(aes_key: bytes, public_key: rsa.RSAPublicKey | None = None) -> bytes:
    """RSAES-OAEP (SHA-1, MGF1-SHA-1, no label) of the 16-byte AES key: 256 bytes.

    ``public_key`` defaults to the AirPort key; tests substitute their own.
    """
    if len(aes_key) != AES_KEY_BYTES:
        raise RaopCryptoError(f"AES key must be {AES_KEY_BYTES} bytes, got {len(aes_key)}")
    key = public_key if public_key is not None else airport_public_key()
    sha1 = hashes.SHA1()  # noqa: S303 - the receivers only understand SHA-1 OAEP
    oaep = padding.OAEP(mgf=padding.MGF1(sha1), algorithm=sha1, label=None)
    return key.encrypt(aes_key, oaep)


def apple_challenge(random_bytes: bytes) -> str:
    """The ``Apple-Challenge`` header value: 16 random bytes, base64 without padding."""
    if len(random_bytes) != CHALLENGE_BYTES:
        raise RaopCryptoError(f"challenge must be {CHALLENGE_BYTES} bytes")
    return b64_nopad(random_bytes)


class AudioCipher:
    """AES-128-CBC over each RTP payload, restarting from the session IV for every packet.

    Only the first ``floor(len / 16) * 16`` bytes are encrypted; the tail stays clear.
    """

    def __init__(self, key: bytes, iv: bytes) -> None:
        if len(key) != AES_KEY_BYTES or len(iv) != AES_BLOCK_BYTES:
            raise RaopCryptoError("AES key and IV must both be 16 bytes")
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(iv))

    def encrypt(self, payload: bytes) -> bytes:
        """Encrypt one packet payload."""
        whole = len(payload) - len(payload) % AES_BLOCK_BYTES
        encryptor = self._cipher.encryptor()
        return encryptor.update(payload[:whole]) + encryptor.finalize() + payload[whole:]

    def decrypt(self, payload: bytes) -> bytes:
        """Decrypt one packet payload (what a receiver does)."""
        whole = len(payload) - len(payload) % AES_BLOCK_BYTES
        decryptor = self._cipher.decryptor()
        return decryptor.update(payload[:whole]) + decryptor.finalize() + payload[whole:]
