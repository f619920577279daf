"""HAP pair-setup, controller side: transient (M1-M4) and with a PIN (M1-M6)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .credentials import HapCredentials, check_identifier, ed25519_public_bytes
from .crypto import (
    PAIR_SETUP_ACCESSORY_SIGN,
    PAIR_SETUP_CONTROLLER_SIGN,
    PAIR_SETUP_ENCRYPT,
    hkdf_sha512,
    seal,
    unseal,
    verify_ed25519,
)
from .errors import ProtocolViolation
from .flow import PairingFlow, Steps
from .srp import HAP_USERNAME, SrpClient, check_server_proof
from .tlv8 import TRANSIENT_FLAG, TlvType, decode_tlv, encode_int, encode_tlv, expect_state, require

TRANSIENT_PIN = "3939"
HKP_NORMAL = 3
HKP_TRANSIENT = 4


@dataclass(frozen=True)
class PairSetupResult:
    """Outcome of pair-setup: the SRP session key, plus credentials after a PIN setup."""

    session_key: bytes
    credentials: HapCredentials | None = None
    accessory_id: str | None = None


class PairSetup(PairingFlow[PairSetupResult]):
    """Pair-setup state machine; build with :meth:`transient` or :meth:`with_pin`."""

    path = "/pair-setup"

    def __init__(
        self,
        *,
        pin: str,
        transient: bool,
        identifier: str | None = None,
        seed: bytes | None = None,
        srp_private: bytes | None = None,
    ) -> None:
        super().__init__()
        if not transient and identifier is None:
            raise ValueError("a PIN pair-setup needs our pairing identifier")
        self._transient = transient
        self._identifier = check_identifier(identifier) if identifier is not None else None
        self._seed = seed if seed is not None else os.urandom(32)
        if len(self._seed) != 32:
            raise ValueError("Ed25519 seed must be 32 bytes")
        self._srp = SrpClient(HAP_USERNAME, pin, private_key=srp_private)

    @classmethod
    def transient(cls, *, srp_private: bytes | None = None) -> PairSetup:
        """Transient pairing with the fixed PIN 3939 (``X-Apple-HKP: 4``)."""
        return cls(pin=TRANSIENT_PIN, transient=True, srp_private=srp_private)

    @classmethod
    def with_pin(
        cls,
        pin: str,
        identifier: str,
        *,
        seed: bytes | None = None,
        srp_private: bytes | None = None,
    ) -> PairSetup:
        """Normal pairing with the displayed PIN; ``identifier`` is our DACP id."""
        return cls(
            pin=pin, transient=False, identifier=identifier, seed=seed, srp_private=srp_private
        )

    @property
    def hkp(self) -> int:
        """Value of the ``X-Apple-HKP`` header for every request of this flow."""
        return HKP_TRANSIENT if self._transient else HKP_NORMAL

    def _run(self) -> Steps[PairSetupResult]:
        m1 = [(TlvType.STATE, encode_int(1)), (TlvType.METHOD, encode_int(0))]
        if self._transient:
            m1.append((TlvType.FLAGS, encode_int(TRANSIENT_FLAG)))
        m2 = decode_tlv((yield encode_tlv(m1)))
        expect_state(m2, 2)
        salt = require(m2, TlvType.SALT, 16)
        proof = self._srp.process(salt, require(m2, TlvType.PUBLIC_KEY))

        m3 = [
            (TlvType.STATE, encode_int(3)),
            (TlvType.PUBLIC_KEY, self._srp.public_key),
            (TlvType.PROOF, proof.client_proof),
        ]
        m4 = decode_tlv((yield encode_tlv(m3)))
        expect_state(m4, 4)
        check_server_proof(proof, require(m4, TlvType.PROOF))
        if self._transient:
            return PairSetupResult(session_key=proof.session_key)

        assert self._identifier is not None
        key = Ed25519PrivateKey.from_private_bytes(self._seed)
        ltpk = ed25519_public_bytes(key)
        identifier = self._identifier.encode()
        controller_x = hkdf_sha512(proof.session_key, PAIR_SETUP_CONTROLLER_SIGN)
        inner = encode_tlv(
            [
                (TlvType.IDENTIFIER, identifier),
                (TlvType.PUBLIC_KEY, ltpk),
                (TlvType.SIGNATURE, key.sign(controller_x + identifier + ltpk)),
            ]
        )
        encrypt_key = hkdf_sha512(proof.session_key, PAIR_SETUP_ENCRYPT)
        m5 = [
            (TlvType.STATE, encode_int(5)),
            (TlvType.ENCRYPTED_DATA, seal(encrypt_key, b"PS-Msg05", inner)),
        ]
        m6 = decode_tlv((yield encode_tlv(m5)))
        expect_state(m6, 6)
        sub = decode_tlv(unseal(encrypt_key, b"PS-Msg06", require(m6, TlvType.ENCRYPTED_DATA)))
        accessory_id = require(sub, TlvType.IDENTIFIER)
        accessory_ltpk = require(sub, TlvType.PUBLIC_KEY, 32)
        accessory_x = hkdf_sha512(proof.session_key, PAIR_SETUP_ACCESSORY_SIGN)
        verify_ed25519(
            accessory_ltpk,
            require(sub, TlvType.SIGNATURE),
            accessory_x + accessory_id + accessory_ltpk,
            "pair-setup M6",
        )
        try:
            accessory_name = accessory_id.decode()
        except UnicodeDecodeError as exc:
            raise ProtocolViolation("accessory identifier is not UTF-8") from exc
        return PairSetupResult(
            session_key=proof.session_key,
            credentials=HapCredentials(seed=self._seed, accessory_ltpk=accessory_ltpk),
            accessory_id=accessory_name,
        )
