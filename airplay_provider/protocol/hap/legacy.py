"""Legacy RAOP pairing (Apple TV PIN): /pair-setup-pin (SRP-SHA1-2048, AES-GCM) and /pair-verify."""

from __future__ import annotations

import hashlib
import plistlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .credentials import LegacyCredentials, ed25519_public_bytes
from .errors import ProtocolViolation
from .flow import PairingFlow, Steps
from .pair_verify import x25519_public_bytes, x25519_shared
from .srp import LEGACY_GROUP, SrpClient

PLIST_CONTENT_TYPE = "application/x-apple-binary-plist"
OCTET_CONTENT_TYPE = "application/octet-stream"


def legacy_setup_key_iv(session_key: bytes) -> tuple[bytes, bytes]:
    """AES-128-GCM key and IV of the last /pair-setup-pin step (IV's last byte plus one)."""
    key = hashlib.sha512(b"Pair-Setup-AES-Key" + session_key).digest()[:16]
    iv = bytearray(hashlib.sha512(b"Pair-Setup-AES-IV" + session_key).digest()[:16])
    iv[-1] = (iv[-1] + 1) & 0xFF
    return key, bytes(iv)


def legacy_verify_key_iv(shared: bytes) -> tuple[bytes, bytes]:
    """AES-128-CTR key and IV of legacy /pair-verify."""
    key = hashlib.sha512(b"Pair-Verify-AES-Key" + shared).digest()[:16]
    iv = hashlib.sha512(b"Pair-Verify-AES-IV" + shared).digest()[:16]
    return key, iv


def _load_plist(body: bytes) -> dict[str, Any]:
    try:
        value = plistlib.loads(body)
    except Exception as exc:  # plistlib raises many types on garbage
        raise ProtocolViolation("reply is not a valid plist") from exc
    if not isinstance(value, dict):
        raise ProtocolViolation("reply plist is not a dictionary")
    return value


def _plist_bytes(reply: dict[str, Any], key: str, length: int | None = None) -> bytes:
    value = reply.get(key)
    if not isinstance(value, bytes):
        raise ProtocolViolation(f"reply plist has no '{key}' data")
    if length is not None and len(value) != length:
        raise ProtocolViolation(f"reply '{key}' has {len(value)} bytes, expected {length}")
    return value


def _dump(value: dict[str, Any]) -> bytes:
    return plistlib.dumps(value, fmt=plistlib.FMT_BINARY)


class LegacyPairSetup(PairingFlow[LegacyCredentials]):
    """The three POSTs of /pair-setup-pin after /pair-pin-start showed the PIN."""

    path = "/pair-setup-pin"
    content_type = PLIST_CONTENT_TYPE

    def __init__(self, pin: str, credentials: LegacyCredentials | None = None) -> None:
        super().__init__()
        self._credentials = credentials or LegacyCredentials.generate()
        self._srp = SrpClient(
            self._credentials.user,
            pin,
            group=LEGACY_GROUP,
            private_key=self._credentials.secret,
        )

    def _run(self) -> Steps[LegacyCredentials]:
        first = _load_plist((yield _dump({"method": "pin", "user": self._credentials.user})))
        salt = _plist_bytes(first, "salt", 16)
        proof = self._srp.process(salt, _plist_bytes(first, "pk", LEGACY_GROUP.width))
        second = _load_plist(
            (yield _dump({"pk": self._srp.public_key, "proof": proof.client_proof}))
        )
        _plist_bytes(second, "proof")  # present on success; its value is not checked (like MA)
        key, iv = legacy_setup_key_iv(proof.session_key)
        sealed = AESGCM(key).encrypt(iv, ed25519_public_bytes(self._credentials.signing_key), None)
        yield _dump({"epk": sealed[:-16], "authTag": sealed[-16:]})
        return self._credentials


@dataclass(frozen=True)
class LegacyVerifyResult:
    """Outcome of legacy pair-verify (RTSP continues in clear)."""

    shared_secret: bytes


class LegacyPairVerify(PairingFlow[LegacyVerifyResult]):
    """Legacy /pair-verify: X25519 + Ed25519 with AES-CTR, two raw POSTs."""

    path = "/pair-verify"
    content_type = OCTET_CONTENT_TYPE

    def __init__(
        self, credentials: LegacyCredentials, *, ephemeral: X25519PrivateKey | None = None
    ) -> None:
        super().__init__()
        self._credentials = credentials
        self._ephemeral = ephemeral or X25519PrivateKey.generate()

    def _run(self) -> Steps[LegacyVerifyResult]:
        our_public = x25519_public_bytes(self._ephemeral)
        signing_key = self._credentials.signing_key
        reply = yield b"\x01\x00\x00\x00" + our_public + ed25519_public_bytes(signing_key)
        if len(reply) != 96:
            raise ProtocolViolation(f"legacy pair-verify reply has {len(reply)} bytes, expected 96")
        device_public = reply[:32]
        shared = x25519_shared(self._ephemeral, device_public)
        key, iv = legacy_verify_key_iv(shared)
        ctr = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
        ctr.update(reply[32:])  # the device's signature: advances the keystream only
        signature = signing_key.sign(our_public + device_public)
        yield b"\x00\x00\x00\x00" + ctr.update(signature)
        return LegacyVerifyResult(shared_secret=shared)
