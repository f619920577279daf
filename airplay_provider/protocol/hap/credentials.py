"""Stored pairing credentials and their string forms (as Music Assistant keeps them)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import InvalidCredentials

_HEX = re.compile(r"[0-9a-fA-F]*")
_DACP_ID = re.compile(r"[0-9A-F]{16}")


def ed25519_public_bytes(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key of an Ed25519 private key."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def check_identifier(identifier: str) -> str:
    """Validate a pairing identity: the persistent DACP id, 16 upper-case hex characters."""
    if not _DACP_ID.fullmatch(identifier):
        raise InvalidCredentials(
            f"pairing identifier must be 16 upper-case hex, got {identifier!r}"
        )
    return identifier


def _unhex(text: str, length: int, what: str) -> bytes:
    if len(text) != length * 2 or not _HEX.fullmatch(text):
        raise InvalidCredentials(f"{what} must be {length * 2} hex characters")
    return bytes.fromhex(text)


@dataclass(frozen=True)
class HapCredentials:
    """Our long-term Ed25519 key plus the accessory's long-term public key (AirPlay 2)."""

    seed: bytes
    accessory_ltpk: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise InvalidCredentials("Ed25519 seed must be 32 bytes")
        if len(self.accessory_ltpk) != 32:
            raise InvalidCredentials("accessory public key must be 32 bytes")

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        """Our long-term signing key."""
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def public_key(self) -> bytes:
        """Our long-term public key (LTPK)."""
        return ed25519_public_bytes(self.signing_key)

    def serialize(self) -> str:
        """192 hex characters: seed ‖ our public key ‖ accessory public key."""
        return (self.seed + self.public_key + self.accessory_ltpk).hex()

    @classmethod
    def parse(cls, text: str) -> HapCredentials:
        """Parse the 192-hex string; our public key must match the seed."""
        raw = _unhex(text.strip(), 96, "AirPlay 2 credentials")
        credentials = cls(seed=raw[:32], accessory_ltpk=raw[64:])
        if credentials.public_key != raw[32:64]:
            raise InvalidCredentials("stored public key does not belong to the stored seed")
        return credentials


@dataclass(frozen=True)
class LegacyCredentials:
    """Legacy RAOP pairing: our client id and the 32-byte auth secret (Ed25519 seed)."""

    client_id: bytes
    secret: bytes

    def __post_init__(self) -> None:
        if len(self.client_id) != 8:
            raise InvalidCredentials("legacy client id must be 8 bytes")
        if len(self.secret) != 32:
            raise InvalidCredentials("legacy auth secret must be 32 bytes")

    @classmethod
    def generate(cls) -> LegacyCredentials:
        """Fresh random client id and secret."""
        return cls(client_id=os.urandom(8), secret=os.urandom(32))

    @property
    def user(self) -> str:
        """The SRP user name: the client id as upper-case hex."""
        return self.client_id.hex().upper()

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        """Our Ed25519 key derived from the secret."""
        return Ed25519PrivateKey.from_private_bytes(self.secret)

    def serialize(self) -> str:
        """``<client id hex>:<secret hex>`` as Music Assistant stores it."""
        return f"{self.client_id.hex().upper()}:{self.secret.hex()}"

    @classmethod
    def parse(cls, text: str) -> LegacyCredentials:
        """Parse ``<16 hex>:<64 hex>``."""
        client_hex, sep, secret_hex = text.strip().partition(":")
        if not sep:
            raise InvalidCredentials("legacy credentials must be '<client id>:<secret>'")
        return cls(
            client_id=_unhex(client_hex, 8, "legacy client id"),
            secret=_unhex(secret_hex, 32, "legacy secret"),
        )
