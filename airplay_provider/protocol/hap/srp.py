"""SRP-6a client math for HAP (3072-bit, SHA-512) and legacy RAOP pairing (2048-bit, SHA-1)."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from srptools import SRPContext
from srptools.constants import PRIME_2048, PRIME_2048_GEN, PRIME_3072, PRIME_3072_GEN

from .errors import ProtocolViolation

HAP_USERNAME = "Pair-Setup"


@dataclass(frozen=True)
class SrpGroup:
    """An SRP group and the Apple variant of the session key and proof built on it."""

    prime_hex: str
    generator_hex: str
    hash_func: Callable[[bytes], Any]
    apple_legacy: bool
    """Legacy RAOP: K = H(S‖0⁴) ‖ H(S‖0³1) and A, B padded to the modulus width in M1."""

    @property
    def modulus(self) -> int:
        """The prime N."""
        return int(self.prime_hex, 16)

    @property
    def width(self) -> int:
        """Byte length of N."""
        return (self.modulus.bit_length() + 7) // 8

    def digest(self, *parts: bytes) -> bytes:
        """Hash of the concatenated parts."""
        return bytes(self.hash_func(b"".join(parts)).digest())


HAP_GROUP = SrpGroup(PRIME_3072, PRIME_3072_GEN, hashlib.sha512, apple_legacy=False)
LEGACY_GROUP = SrpGroup(PRIME_2048, PRIME_2048_GEN, hashlib.sha1, apple_legacy=True)


def to_bytes(value: int) -> bytes:
    """Minimal big-endian bytes of a non-negative integer (at least one byte)."""
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


@dataclass(frozen=True)
class SrpProof:
    """What the client learns after processing the server's salt and public key."""

    session_key: bytes
    client_proof: bytes
    expected_server_proof: bytes


class SrpClient:
    """The controller side of one SRP-6a exchange."""

    def __init__(
        self,
        username: str,
        password: str,
        *,
        group: SrpGroup = HAP_GROUP,
        private_key: bytes | None = None,
    ) -> None:
        self._group = group
        self._username = username
        self._context = SRPContext(
            username,
            password,
            prime=group.prime_hex,
            generator=group.generator_hex,
            hash_func=group.hash_func,
        )
        self._private = int.from_bytes(private_key or os.urandom(32), "big")
        if self._private == 0:
            raise ValueError("SRP private value must not be zero")
        self._public = int(self._context.get_client_public(client_private=self._private))

    @property
    def public_key(self) -> bytes:
        """A as sent on the wire (minimal for HAP, modulus-wide for legacy RAOP)."""
        return self._wire(self._public)

    def _wire(self, value: int) -> bytes:
        if self._group.apple_legacy:
            return value.to_bytes(self._group.width, "big")
        return to_bytes(value)

    def process(self, salt: bytes, server_public: bytes) -> SrpProof:
        """Compute the session key K and the proofs from the server's salt and B."""
        group = self._group
        modulus = group.modulus
        server_value = int.from_bytes(server_public, "big")
        if not server_public or server_value % modulus == 0 or server_value >= modulus:
            raise ProtocolViolation("server SRP public key is invalid")
        scrambler = int(
            self._context.get_common_secret(server_public=server_value, client_public=self._public)
        )
        if scrambler == 0:
            raise ProtocolViolation("SRP scrambling parameter is zero")
        password_hash = int(self._context.get_common_password_hash(salt))
        premaster = int(
            self._context.get_client_premaster_secret(
                password_hash=password_hash,
                server_public=server_value,
                client_private=self._private,
                common_secret=scrambler,
            )
        )
        session_key = self._session_key(to_bytes(premaster))
        group_hash = bytes(
            a ^ b
            for a, b in zip(
                group.digest(to_bytes(modulus)),
                group.digest(to_bytes(int(group.generator_hex, 16))),
                strict=True,
            )
        )
        client_public = self._wire(self._public)
        client_proof = group.digest(
            group_hash,
            group.digest(self._username.encode()),
            salt,
            client_public,
            self._wire(server_value),
            session_key,
        )
        server_proof = group.digest(client_public, client_proof, session_key)
        return SrpProof(session_key, client_proof, server_proof)

    def _session_key(self, premaster: bytes) -> bytes:
        if self._group.apple_legacy:
            return self._group.digest(premaster, b"\x00\x00\x00\x00") + self._group.digest(
                premaster, b"\x00\x00\x00\x01"
            )
        return self._group.digest(premaster)


def check_server_proof(proof: SrpProof, server_proof: bytes) -> None:
    """Raise ProtocolViolation unless the server's M2 proof matches ours."""
    if not hmac.compare_digest(proof.expected_server_proof, server_proof):
        raise ProtocolViolation("server SRP proof does not match")
