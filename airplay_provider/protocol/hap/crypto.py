"""HKDF labels and ChaCha20-Poly1305 / Ed25519 helpers shared by the HAP flows."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ProtocolViolation

# (salt, info) pairs of the HAP key schedule.
PAIR_SETUP_ENCRYPT = (b"Pair-Setup-Encrypt-Salt", b"Pair-Setup-Encrypt-Info")
PAIR_SETUP_CONTROLLER_SIGN = (
    b"Pair-Setup-Controller-Sign-Salt",
    b"Pair-Setup-Controller-Sign-Info",
)
PAIR_SETUP_ACCESSORY_SIGN = (b"Pair-Setup-Accessory-Sign-Salt", b"Pair-Setup-Accessory-Sign-Info")
PAIR_VERIFY_ENCRYPT = (b"Pair-Verify-Encrypt-Salt", b"Pair-Verify-Encrypt-Info")
CONTROL_WRITE = (b"Control-Salt", b"Control-Write-Encryption-Key")
CONTROL_READ = (b"Control-Salt", b"Control-Read-Encryption-Key")
EVENTS_WRITE = (b"Events-Salt", b"Events-Write-Encryption-Key")
EVENTS_READ = (b"Events-Salt", b"Events-Read-Encryption-Key")


def hkdf_sha512(ikm: bytes, label: tuple[bytes, bytes], length: int = 32) -> bytes:
    """HKDF-SHA512 (RFC 5869) of ``ikm`` with the (salt, info) pair ``label``."""
    salt, info = label
    return HKDF(algorithm=hashes.SHA512(), length=length, salt=salt, info=info).derive(ikm)


def message_nonce(label: bytes) -> bytes:
    """12-byte nonce of a pairing message: four zero bytes and an 8-byte ASCII label."""
    if len(label) != 8:
        raise ValueError("pairing nonce labels are 8 bytes")
    return b"\x00\x00\x00\x00" + label


def seal(key: bytes, label: bytes, plaintext: bytes) -> bytes:
    """ChaCha20-Poly1305 encrypt a pairing sub-TLV; the 16-byte tag is appended."""
    return ChaCha20Poly1305(key).encrypt(message_nonce(label), plaintext, None)


def unseal(key: bytes, label: bytes, ciphertext: bytes) -> bytes:
    """Decrypt a pairing sub-TLV, raising ProtocolViolation on a bad tag."""
    if len(ciphertext) < 16:
        raise ProtocolViolation("encrypted data shorter than its tag")
    try:
        return ChaCha20Poly1305(key).decrypt(message_nonce(label), ciphertext, None)
    except InvalidTag as exc:
        raise ProtocolViolation(f"bad authentication tag on {label.decode()}") from exc


def verify_ed25519(public_key: bytes, signature: bytes, message: bytes, what: str) -> None:
    """Check an Ed25519 signature, raising ProtocolViolation when it does not match."""
    if len(public_key) != 32 or len(signature) != 64:
        raise ProtocolViolation(f"{what}: bad key or signature length")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise ProtocolViolation(f"{what}: signature does not verify") from exc
