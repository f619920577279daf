"""Sans-I/O legacy RAOP pairing twin (Apple TV style /pair-setup-pin and /pair-verify).

Independent of the sender: its own SRP-SHA1-2048 server math with plain pow().
"""

from __future__ import annotations

import hashlib
import os
import plistlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from srptools.constants import PRIME_2048

N = int(PRIME_2048, 16)
G = 2
WIDTH = 256
AUTH_REQUIRED = 470


def _sha1(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts)).digest()


def _pad(value: int) -> bytes:
    return value.to_bytes(WIDTH, "big")


def _plist(body: bytes) -> dict[str, Any] | None:
    try:
        value = plistlib.loads(body)
    except Exception:
        return None
    return value if isinstance(value, dict) else None


@dataclass
class _Setup:
    user: str
    salt: bytes
    b: int
    v: int
    big_b: int
    session_key: bytes = b""


@dataclass
class LegacyAccessory:
    """The accessory side of legacy pairing; one per emulated device."""

    signing_key: Ed25519PrivateKey
    pin: str | None = None
    paired: dict[str, bytes] = field(default_factory=dict)
    """SRP user name (client id hex) -> the controller's Ed25519 public key."""
    _setup: _Setup | None = None
    _verify: dict[int, tuple[bytes, bytes, bytes, CipherContext]] = field(default_factory=dict)

    def setup_pin(self, body: bytes) -> tuple[int, bytes]:
        """One POST /pair-setup-pin; returns (status, plist body)."""
        request = _plist(body)
        if request is None:
            return 400, b""
        if request.get("method") == "pin" and isinstance(request.get("user"), str):
            return self._step1(request["user"])
        if isinstance(request.get("pk"), bytes) and isinstance(request.get("proof"), bytes):
            return self._step2(request["pk"], request["proof"])
        if isinstance(request.get("epk"), bytes) and isinstance(request.get("authTag"), bytes):
            return self._step3(request["epk"], request["authTag"])
        return 400, b""

    def _step1(self, user: str) -> tuple[int, bytes]:
        if self.pin is None:
            return AUTH_REQUIRED, b""
        salt = os.urandom(16)
        b = int.from_bytes(os.urandom(32), "big")
        x = int.from_bytes(_sha1(salt, _sha1(f"{user}:{self.pin}".encode())), "big")
        v = pow(G, x, N)
        k = int.from_bytes(_sha1(_pad(N), _pad(G)), "big")
        big_b = (k * v + pow(G, b, N)) % N
        self._setup = _Setup(user, salt, b, v, big_b)
        return 200, plistlib.dumps({"pk": _pad(big_b), "salt": salt}, fmt=plistlib.FMT_BINARY)

    def _step2(self, a_bytes: bytes, proof: bytes) -> tuple[int, bytes]:
        setup = self._setup
        a = int.from_bytes(a_bytes, "big")
        if setup is None or a % N == 0:
            return AUTH_REQUIRED, b""
        u = int.from_bytes(_sha1(_pad(a), _pad(setup.big_b)), "big")
        s = pow(a * pow(setup.v, u, N), setup.b, N)
        s_bytes = s.to_bytes((s.bit_length() + 7) // 8 or 1, "big")
        key = _sha1(s_bytes, b"\x00\x00\x00\x00") + _sha1(s_bytes, b"\x00\x00\x00\x01")
        n_hash, g_hash = _sha1(_pad(N)), _sha1(bytes([G]))
        group = bytes(x ^ y for x, y in zip(n_hash, g_hash, strict=True))
        user_hash = _sha1(setup.user.encode())
        expected = _sha1(group, user_hash, setup.salt, _pad(a), _pad(setup.big_b), key)
        if not secrets.compare_digest(expected, proof):
            self._setup = None
            return AUTH_REQUIRED, b""
        setup.session_key = key
        server_proof = _sha1(_pad(a), proof, key)
        return 200, plistlib.dumps({"proof": server_proof}, fmt=plistlib.FMT_BINARY)

    def _step3(self, epk: bytes, tag: bytes) -> tuple[int, bytes]:
        setup = self._setup
        self._setup = None
        if setup is None or not setup.session_key:
            return AUTH_REQUIRED, b""
        aes_key = hashlib.sha512(b"Pair-Setup-AES-Key" + setup.session_key).digest()[:16]
        iv = bytearray(hashlib.sha512(b"Pair-Setup-AES-IV" + setup.session_key).digest()[:16])
        iv[15] = (iv[15] + 1) % 256
        try:
            public = AESGCM(aes_key).decrypt(bytes(iv), epk + tag, None)
        except InvalidTag:
            return AUTH_REQUIRED, b""
        if len(public) != 32:
            return 400, b""
        self.paired[setup.user] = public
        return 200, b""

    def verify(self, connection: int, body: bytes) -> tuple[int, bytes]:
        """One POST /pair-verify without X-Apple-HKP; returns (status, raw body)."""
        if len(body) == 68 and body[:4] == b"\x01\x00\x00\x00":
            return self._verify1(connection, body[4:36], body[36:])
        if len(body) == 68 and body[:4] == b"\x00\x00\x00\x00" and connection in self._verify:
            return self._verify2(connection, body[4:])
        return 400, b""

    def _verify1(self, connection: int, their_eph: bytes, their_ltpk: bytes) -> tuple[int, bytes]:
        if their_ltpk not in self.paired.values():
            return AUTH_REQUIRED, b""
        ephemeral = X25519PrivateKey.generate()
        ours = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        try:
            shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(their_eph))
        except ValueError:
            return AUTH_REQUIRED, b""
        key = hashlib.sha512(b"Pair-Verify-AES-Key" + shared).digest()[:16]
        iv = hashlib.sha512(b"Pair-Verify-AES-IV" + shared).digest()[:16]
        ctr = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
        signature = ctr.update(self.signing_key.sign(ours + their_eph))
        self._verify[connection] = (their_eph, their_ltpk, ours, ctr)
        return 200, ours + signature

    def _verify2(self, connection: int, encrypted: bytes) -> tuple[int, bytes]:
        their_eph, their_ltpk, ours, ctr = self._verify.pop(connection)
        signature = ctr.update(encrypted)  # CTR: decrypting is the same keystream XOR
        try:
            Ed25519PublicKey.from_public_bytes(their_ltpk).verify(signature, their_eph + ours)
        except InvalidSignature:
            return AUTH_REQUIRED, b""
        return 200, b""
