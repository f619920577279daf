"""HAP pair-verify (M1-M4), controller side, with stored credentials."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .credentials import HapCredentials, check_identifier
from .crypto import PAIR_VERIFY_ENCRYPT, hkdf_sha512, seal, unseal, verify_ed25519
from .errors import ProtocolViolation
from .flow import PairingFlow, Steps
from .pair_setup import HKP_NORMAL
from .tlv8 import TlvType, decode_tlv, encode_int, encode_tlv, expect_state, require


@dataclass(frozen=True)
class PairVerifyResult:
    """Outcome of pair-verify: the X25519 shared secret that keys the session."""

    shared_secret: bytes
    accessory_id: bytes


def x25519_public_bytes(key: X25519PrivateKey) -> bytes:
    """Raw 32-byte X25519 public key."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def x25519_shared(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    """X25519 agreement, raising ProtocolViolation for an invalid peer key."""
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:
        raise ProtocolViolation("invalid X25519 public key from peer") from exc


class PairVerify(PairingFlow[PairVerifyResult]):
    """Pair-verify state machine (``X-Apple-HKP: 3``)."""

    path = "/pair-verify"
    hkp = HKP_NORMAL

    def __init__(
        self,
        credentials: HapCredentials,
        identifier: str,
        *,
        ephemeral: X25519PrivateKey | None = None,
    ) -> None:
        super().__init__()
        self._credentials = credentials
        self._identifier = check_identifier(identifier).encode()
        self._ephemeral = ephemeral or X25519PrivateKey.generate()

    def _run(self) -> Steps[PairVerifyResult]:
        our_public = x25519_public_bytes(self._ephemeral)
        m1 = [(TlvType.STATE, encode_int(1)), (TlvType.PUBLIC_KEY, our_public)]
        m2 = decode_tlv((yield encode_tlv(m1)))
        expect_state(m2, 2)
        accessory_public = require(m2, TlvType.PUBLIC_KEY, 32)
        shared = x25519_shared(self._ephemeral, accessory_public)
        key = hkdf_sha512(shared, PAIR_VERIFY_ENCRYPT)
        sub = decode_tlv(unseal(key, b"PV-Msg02", require(m2, TlvType.ENCRYPTED_DATA)))
        accessory_id = require(sub, TlvType.IDENTIFIER)
        verify_ed25519(
            self._credentials.accessory_ltpk,
            require(sub, TlvType.SIGNATURE),
            accessory_public + accessory_id + our_public,
            "pair-verify M2",
        )
        signature = self._credentials.signing_key.sign(
            our_public + self._identifier + accessory_public
        )
        inner = encode_tlv([(TlvType.IDENTIFIER, self._identifier), (TlvType.SIGNATURE, signature)])
        m3 = [
            (TlvType.STATE, encode_int(3)),
            (TlvType.ENCRYPTED_DATA, seal(key, b"PV-Msg03", inner)),
        ]
        m4 = decode_tlv((yield encode_tlv(m3)))
        expect_state(m4, 4)
        return PairVerifyResult(shared_secret=shared, accessory_id=accessory_id)
