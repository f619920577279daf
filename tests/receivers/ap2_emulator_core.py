"""Sans-I/O core of a strict AirPlay 2 receiver emulator (accessory side of HAP pairing).

`AccessoryConnection` is fed a connection's bytes and returns what to send; it answers from a
method table (pairing, ``/info``, ``OPTIONS``), then the video handler, then the encrypted
session's (`ap2_stream.Ap2StreamSession`, its own method table), and records every refusal in
the device's `ErrorLog` in one place (`_handle`). Parsing and framing are in ap2_emulator_wire.py.

Written independently of the sender code: its own request parser, SRP server math (plain pow),
key schedule and channel framing. Only the TLV8 codec is shared (it has fixed-vector tests).
"""

from __future__ import annotations

import hashlib
import logging
import os
import plistlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from srptools.constants import PRIME_3072

from airplay_provider.protocol.hap.errors import TlvError
from airplay_provider.protocol.hap.tlv8 import decode_tlv, encode_tlv
from tests.receivers.ap2_emulator_legacy import LegacyAccessory
from tests.receivers.ap2_emulator_wire import (
    BadRequest,
    EmuFraming,
    EmuRequest,
    EmuResponse,
    RequestParser,
    hkdf,
)
from tests.receivers.strict import ErrorLog

__all__ = [  # the wire types are defined in ap2_emulator_wire.py; tests import them from here too
    "AccessoryConnection",
    "AccessoryDevice",
    "BadRequest",
    "EmuFraming",
    "EmuRequest",
    "EmuResponse",
    "RequestParser",
]

LOG = logging.getLogger(__name__)

# HAP TLV types and error codes, spelled out here on purpose (no import from the sender side).
T_METHOD, T_IDENTIFIER, T_SALT, T_PUBLIC_KEY, T_PROOF = 0, 1, 2, 3, 4
T_ENCRYPTED, T_STATE, T_ERROR, T_RETRY_DELAY, T_SIGNATURE, T_FLAGS = 5, 6, 7, 8, 10, 0x13
E_UNKNOWN, E_AUTHENTICATION, E_BACKOFF = 1, 2, 3
HAP_ERROR_NAMES = {E_UNKNOWN: "unknown", E_AUTHENTICATION: "authentication", E_BACKOFF: "backoff"}

N = int(PRIME_3072, 16)
G = 5
N_BYTES = 384
FEATURES = (1 << 9) | (1 << 38) | (1 << 41) | (1 << 46) | (1 << 48)


def _h(*parts: bytes) -> bytes:
    return hashlib.sha512(b"".join(parts)).digest()


def _minimal(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


def _raw(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass
class AccessoryDevice:
    """State shared by all connections of one emulated receiver."""

    name: str = "Emulated Speaker"
    device_id: str = "AA:BB:CC:DD:EE:FF"
    model: str = "AudioAccessory5,1"
    status_flags: int = 0x4
    features: int = FEATURES
    backoff: bool = False
    retry_delay: int = 30
    signing_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    paired: dict[bytes, bytes] = field(default_factory=dict)
    displayed_pin: str | None = None
    legacy: LegacyAccessory = field(init=False)
    routes: dict[tuple[str, str], Callable[[EmuRequest], EmuResponse]] = field(default_factory=dict)
    """Extra (method, path) handlers for encrypted sessions; later issues add SETUP etc."""
    session_handler: Callable[[AccessoryConnection, EmuRequest], EmuResponse | None] | None = None
    """Encrypted-session requests not in `routes` (SETUP, RECORD, ... on any URI); None = 404."""
    video_handler: Callable[[AccessoryConnection, EmuRequest], EmuResponse | None] | None = None
    """AirPlay video requests (`ap2_video`), encrypted or not: it decides; None = not video."""
    errors: ErrorLog = field(default_factory=ErrorLog)
    """Every refusal and violation on any connection (and the session's, which shares it)."""

    def __post_init__(self) -> None:
        self.legacy = LegacyAccessory(self.signing_key)

    @property
    def public_key(self) -> bytes:
        return _raw(self.signing_key)

    def show_pin(self) -> str:
        self.displayed_pin = f"{secrets.randbelow(10000):04d}"
        self.legacy.pin = self.displayed_pin
        LOG.info("emulator %s displays PIN %s", self.name, self.displayed_pin)
        return self.displayed_pin

    def info_plist(self) -> bytes:
        return plistlib.dumps(
            {
                "features": self.features,
                "statusFlags": self.status_flags,
                "pk": self.public_key,
                "deviceID": self.device_id,
                "name": self.name,
                "model": self.model,
                "sourceVersion": "770.8.1",
                "protocolVersion": "1.1",
            },
            fmt=plistlib.FMT_BINARY,
        )


def _tlv_reply(state: int, *items: tuple[int, bytes]) -> EmuResponse:
    return EmuResponse(
        200,
        body=encode_tlv([(T_STATE, bytes([state])), *items]),
        content_type="application/octet-stream",
    )


def _tlv_error(state: int, code: int) -> EmuResponse:
    return _tlv_reply(state, (T_ERROR, bytes([code])))


def _refusal(response: EmuResponse) -> str | None:
    """Why `response` refuses the request (error status or HAP error TLV); None if it does not."""
    if response.status >= 400:
        return f"refused with {response.status} {response.reason}"
    if response.content_type != "application/octet-stream" or not response.body:
        return None
    try:
        tlv = decode_tlv(response.body)
    except TlvError:
        return None  # a legacy (raw) pairing body
    if T_ERROR not in tlv:
        return None
    code = tlv[T_ERROR][0] if tlv[T_ERROR] else 0
    state = tlv.get(T_STATE, b"\x00")[0]
    return f"HAP error {HAP_ERROR_NAMES.get(code, code)} in M{state}"


@dataclass
class _SrpServer:
    transient: bool
    salt: bytes
    b: int
    v: int
    big_b: int
    session_key: bytes = b""


class AccessoryConnection:
    """One TCP connection to the emulator: feed received bytes, get bytes to send back."""

    def __init__(self, device: AccessoryDevice) -> None:
        self.device = device
        self.parser = RequestParser()
        self.framing: EmuFraming | None = None
        self.closed = False
        self.close_reason = ""
        self.requests: list[EmuRequest] = []
        self._srp: _SrpServer | None = None
        self._verify: tuple[X25519PrivateKey, bytes, bytes] | None = None
        self.shared_secret = b""
        """The pairing's shared secret once encrypted (event-channel keys derive from it)."""
        #: The method table: (method, path) → handler; path "*" matches any path.
        self._methods: dict[tuple[str, str], Callable[[EmuRequest], EmuResponse]] = {
            ("GET", "/info"): self._info,
            ("OPTIONS", "*"): self._options,
            ("POST", "/pair-pin-start"): self._pair_pin_start,
            ("POST", "/pair-setup-pin"): self._pair_setup_pin,
            ("POST", "/pair-setup"): self._pair_setup,
            ("POST", "/pair-verify"): self._pair_verify_any,
        }

    @property
    def encrypted(self) -> bool:
        return self.framing is not None

    def _close(self, reason: str) -> bytes:
        self.closed = True
        self.close_reason = reason
        self.device.errors.record(f"connection closed: {reason}")
        LOG.info("emulator closes connection: %s", reason)
        return b""

    def feed(self, data: bytes) -> bytes:
        """Process received bytes; return what to send. ``closed`` says to hang up after."""
        if self.closed:
            return b""
        try:
            plain = self.framing.open(data) if self.framing else data
            requests = self.parser.feed(plain)
        except BadRequest as exc:
            return self._close(str(exc))
        out = b""
        for index, request in enumerate(requests):
            framing = self.framing
            response = self._handle(request)
            wire = self._encode(request, response)
            out += framing.seal(wire) if framing else wire
            pipelined = index + 1 < len(requests) or self.parser.buffer
            if self.framing is not None and framing is None and pipelined:
                # Bytes sent behind the last pairing message were plaintext.
                return out + self._close("plaintext after pairing")
        return out

    def _encode(self, request: EmuRequest, response: EmuResponse) -> bytes:
        lines = [f"{request.protocol} {response.status} {response.reason}"]
        if "cseq" in request.headers:
            lines.append(f"CSeq: {request.headers['cseq']}")
        lines.append("Server: AirTunes/770.8.1")
        if response.content_type:
            lines.append(f"Content-Type: {response.content_type}")
        lines.extend(f"{name}: {value}" for name, value in response.headers.items())
        lines.append(f"Content-Length: {len(response.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + response.body

    def _handle(self, request: EmuRequest) -> EmuResponse:
        """Answer one request; every refusal is recorded (once: a handler that recorded its
        own message for it already said why)."""
        errors = self.device.errors
        before = len(errors)
        response = self._route(request)
        refusal = _refusal(response)
        if refusal is not None and len(errors) == before and not response.expected:
            errors.record(f"{request.method} {request.path}: {refusal}")
        return response

    def _route(self, request: EmuRequest) -> EmuResponse:
        """The method table first (the same on every connection, encrypted or not), then the
        video handler, then the encrypted session's routes and handler; else 404."""
        self.requests.append(request)
        key = (request.method, request.path)
        handler = self._methods.get(key) or self._methods.get((request.method, "*"))
        if handler is not None:
            return handler(request)
        if self.device.video_handler is not None:
            video = self.device.video_handler(self, request)
            if video is not None:
                return video
        route = self.device.routes.get(key)
        if route is not None and self.encrypted:
            return route(request)
        if self.device.session_handler is not None and self.encrypted:
            response = self.device.session_handler(self, request)
            if response is not None:
                return response
        return EmuResponse(404, "Not Found")

    def _info(self, _request: EmuRequest) -> EmuResponse:
        return EmuResponse(
            200, body=self.device.info_plist(), content_type="application/x-apple-binary-plist"
        )

    def _options(self, _request: EmuRequest) -> EmuResponse:
        return EmuResponse(200, headers={"Public": "ANNOUNCE, SETUP, RECORD, GET, POST, OPTIONS"})

    def _pair_pin_start(self, _request: EmuRequest) -> EmuResponse:
        self.device.show_pin()
        return EmuResponse(200)

    def _pair_setup_pin(self, request: EmuRequest) -> EmuResponse:
        status, body = self.device.legacy.setup_pin(request.body)
        return EmuResponse(status, "OK" if status == 200 else "Auth Required", body)

    def _pair_verify_any(self, request: EmuRequest) -> EmuResponse:
        if "x-apple-hkp" not in request.headers:
            status, body = self.device.legacy.verify(id(self), request.body)
            return EmuResponse(status, "OK" if status == 200 else "Auth Required", body)
        return self._pair_verify(request)

    # --- pair-setup -------------------------------------------------------------------------

    def _pair_setup(self, request: EmuRequest) -> EmuResponse:
        hkp = request.headers.get("x-apple-hkp")
        if hkp not in ("3", "4"):
            return EmuResponse(400, "Bad Request")
        try:
            tlv = decode_tlv(request.body)
        except TlvError:
            return EmuResponse(400, "Bad Request")
        state = tlv.get(T_STATE, b"")
        if state == b"\x01":
            return self._setup_m1(tlv, transient=hkp == "4")
        if state == b"\x03" and self._srp is not None and not self._srp.session_key:
            return self._setup_m3(tlv)
        if state == b"\x05" and self._srp is not None and self._srp.session_key:
            return self._setup_m5(tlv)
        return _tlv_error(min(state[0] + 1, 6) if len(state) == 1 else 2, E_UNKNOWN)

    def _setup_m1(self, tlv: dict[int, bytes], *, transient: bool) -> EmuResponse:
        self._srp = None
        flags = int.from_bytes(tlv.get(T_FLAGS, b"\x00"), "little")
        if tlv.get(T_METHOD) != b"\x00" or bool(flags & 0x10) != transient:
            return _tlv_error(2, E_UNKNOWN)
        if self.device.backoff:
            delay = self.device.retry_delay.to_bytes(2, "little")
            return _tlv_reply(2, (T_ERROR, bytes([E_BACKOFF])), (T_RETRY_DELAY, delay))
        pin = "3939" if transient else self.device.displayed_pin
        if pin is None:
            return _tlv_error(2, E_AUTHENTICATION)
        salt = os.urandom(16)
        b = int.from_bytes(os.urandom(32), "big")
        x = int.from_bytes(_h(salt, _h(b"Pair-Setup:" + pin.encode())), "big")
        v = pow(G, x, N)
        k = int.from_bytes(_h(_minimal(N), G.to_bytes(N_BYTES, "big")), "big")
        big_b = (k * v + pow(G, b, N)) % N
        self._srp = _SrpServer(transient, salt, b, v, big_b)
        return _tlv_reply(2, (T_SALT, salt), (T_PUBLIC_KEY, _minimal(big_b)))

    def _setup_m3(self, tlv: dict[int, bytes]) -> EmuResponse:
        srp = self._srp
        assert srp is not None
        a_bytes, proof = tlv.get(T_PUBLIC_KEY, b""), tlv.get(T_PROOF, b"")
        a = int.from_bytes(a_bytes, "big")
        if a % N == 0 or len(proof) != 64:
            self._srp = None
            return _tlv_error(4, E_AUTHENTICATION)
        u = int.from_bytes(
            _h(a.to_bytes(N_BYTES, "big"), srp.big_b.to_bytes(N_BYTES, "big")), "big"
        )
        secret = pow(a * pow(srp.v, u, N), srp.b, N)
        key = _h(_minimal(secret))
        group = bytes(x ^ y for x, y in zip(_h(_minimal(N)), _h(bytes([G])), strict=True))
        expected = _h(group, _h(b"Pair-Setup"), srp.salt, _minimal(a), _minimal(srp.big_b), key)
        if not secrets.compare_digest(expected, proof):
            self._srp = None
            LOG.info("emulator: wrong PIN (SRP proof mismatch)")
            return _tlv_error(4, E_AUTHENTICATION)
        srp.session_key = key
        response = _tlv_reply(4, (T_PROOF, _h(_minimal(a), proof, key)))
        if srp.transient:
            self._srp = None
            self.framing = EmuFraming(key)
            self.shared_secret = key
        return response

    def _setup_m5(self, tlv: dict[int, bytes]) -> EmuResponse:
        srp = self._srp
        assert srp is not None
        self._srp = None
        key = hkdf(srp.session_key, "Pair-Setup-Encrypt-Salt", "Pair-Setup-Encrypt-Info")
        try:
            inner = ChaCha20Poly1305(key).decrypt(
                bytes(4) + b"PS-Msg05", tlv.get(T_ENCRYPTED, b""), None
            )
            sub = decode_tlv(inner)
            ident, ltpk, sig = sub[T_IDENTIFIER], sub[T_PUBLIC_KEY], sub[T_SIGNATURE]
            controller_x = hkdf(
                srp.session_key,
                "Pair-Setup-Controller-Sign-Salt",
                "Pair-Setup-Controller-Sign-Info",
            )
            Ed25519PublicKey.from_public_bytes(ltpk).verify(sig, controller_x + ident + ltpk)
        except (InvalidTag, InvalidSignature, TlvError, KeyError, ValueError):
            return _tlv_error(6, E_AUTHENTICATION)
        self.device.paired[ident] = ltpk
        accessory_x = hkdf(
            srp.session_key, "Pair-Setup-Accessory-Sign-Salt", "Pair-Setup-Accessory-Sign-Info"
        )
        acc_id = self.device.device_id.encode()
        acc_ltpk = self.device.public_key
        sub_out = encode_tlv(
            [
                (T_IDENTIFIER, acc_id),
                (T_PUBLIC_KEY, acc_ltpk),
                (T_SIGNATURE, self.device.signing_key.sign(accessory_x + acc_id + acc_ltpk)),
            ]
        )
        sealed = ChaCha20Poly1305(key).encrypt(bytes(4) + b"PS-Msg06", sub_out, None)
        return _tlv_reply(6, (T_ENCRYPTED, sealed))

    # --- pair-verify ------------------------------------------------------------------------

    def _pair_verify(self, request: EmuRequest) -> EmuResponse:
        if request.headers.get("x-apple-hkp") != "3":
            return EmuResponse(400, "Bad Request")
        try:
            tlv = decode_tlv(request.body)
        except TlvError:
            return EmuResponse(400, "Bad Request")
        state = tlv.get(T_STATE)
        if state == b"\x01" and len(tlv.get(T_PUBLIC_KEY, b"")) == 32:
            return self._verify_m1(tlv[T_PUBLIC_KEY])
        if state == b"\x03" and self._verify is not None:
            return self._verify_m3(tlv)
        return _tlv_error(2, E_UNKNOWN)

    def _verify_m1(self, controller_public: bytes) -> EmuResponse:
        ephemeral = X25519PrivateKey.generate()
        ours = _raw(ephemeral)
        try:
            shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(controller_public))
        except ValueError:
            return _tlv_error(2, E_AUTHENTICATION)
        acc_id = self.device.device_id.encode()
        signature = self.device.signing_key.sign(ours + acc_id + controller_public)
        key = hkdf(shared, "Pair-Verify-Encrypt-Salt", "Pair-Verify-Encrypt-Info")
        sub = encode_tlv([(T_IDENTIFIER, acc_id), (T_SIGNATURE, signature)])
        sealed = ChaCha20Poly1305(key).encrypt(bytes(4) + b"PV-Msg02", sub, None)
        self._verify = (ephemeral, controller_public, shared)
        return _tlv_reply(2, (T_PUBLIC_KEY, ours), (T_ENCRYPTED, sealed))

    def _verify_m3(self, tlv: dict[int, bytes]) -> EmuResponse:
        assert self._verify is not None
        ephemeral, controller_public, shared = self._verify
        self._verify = None
        key = hkdf(shared, "Pair-Verify-Encrypt-Salt", "Pair-Verify-Encrypt-Info")
        try:
            inner = ChaCha20Poly1305(key).decrypt(
                bytes(4) + b"PV-Msg03", tlv.get(T_ENCRYPTED, b""), None
            )
            sub = decode_tlv(inner)
            ident, signature = sub[T_IDENTIFIER], sub[T_SIGNATURE]
        except (InvalidTag, TlvError, KeyError):
            return _tlv_error(4, E_AUTHENTICATION)
        ltpk = self.device.paired.get(ident)
        if ltpk is None:
            LOG.info("emulator: pair-verify from unknown controller %r", ident)
            return _tlv_error(4, E_AUTHENTICATION)
        try:
            message = controller_public + ident + _raw(ephemeral)
            Ed25519PublicKey.from_public_bytes(ltpk).verify(signature, message)
        except (InvalidSignature, ValueError):
            return _tlv_error(4, E_AUTHENTICATION)
        self.framing = EmuFraming(shared)
        self.shared_secret = shared
        return _tlv_reply(4)
