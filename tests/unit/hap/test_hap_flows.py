"""Pairing state machines driven in memory against the emulator's accessory core (no sockets)."""

from __future__ import annotations

import plistlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from airplay_provider.protocol.hap.channel import ChannelCipher, control_keys
from airplay_provider.protocol.hap.credentials import HapCredentials, LegacyCredentials
from airplay_provider.protocol.hap.errors import (
    AuthenticationError,
    BackoffError,
    HapPairingError,
    ProtocolViolation,
)
from airplay_provider.protocol.hap.flow import PairingFlow
from airplay_provider.protocol.hap.legacy import LegacyPairSetup, LegacyPairVerify
from airplay_provider.protocol.hap.pair_setup import PairSetup
from airplay_provider.protocol.hap.pair_verify import PairVerify
from airplay_provider.protocol.hap.tlv8 import decode_tlv, encode_tlv
from airplay_provider.protocol.rtsp import Headers, MessageParser, Request, Response
from tests.receivers.ap2_emulator_core import AccessoryConnection, AccessoryDevice

IDENTIFIER = "0123456789ABCDEF"


class Link:
    """Carries requests to one AccessoryConnection in memory."""

    def __init__(self, device: AccessoryDevice) -> None:
        self.accessory = AccessoryConnection(device)
        self.parser = MessageParser()
        self.cseq = 0

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        self.cseq += 1
        request = Request("POST", path, Headers({**headers, "CSeq": str(self.cseq)}), body)
        messages = self.parser.feed(self.accessory.feed(request.encode()))
        assert len(messages) == 1
        response = messages[0]
        assert isinstance(response, Response)
        return response

    def run(self, flow: PairingFlow[Any], hkp: str | None, content_type: str) -> None:
        headers = {"Content-Type": content_type}
        if hkp is not None:
            headers["X-Apple-HKP"] = hkp
        body: bytes | None = flow.start()
        while body is not None:
            response = self.post(flow.path, body, headers)
            assert response.status == 200, response.status
            body = flow.handle(response.body)


def _pin_pair(device: AccessoryDevice, seed: bytes | None = None) -> HapCredentials:
    link = Link(device)
    link.post("/pair-pin-start", b"", {"X-Apple-HKP": "3"})
    assert device.displayed_pin is not None
    flow = PairSetup.with_pin(device.displayed_pin, IDENTIFIER, seed=seed)
    link.run(flow, "3", "application/octet-stream")
    credentials = flow.result.credentials
    assert credentials is not None
    return credentials


def test_m1_bodies_are_byte_exact() -> None:
    assert PairSetup.transient().start() == bytes.fromhex("060101 000100 130110")
    assert PairSetup.with_pin("1234", IDENTIFIER).start() == bytes.fromhex("060101 000100")


def test_transient_setup_then_encrypted_exchange() -> None:
    link = Link(AccessoryDevice())
    flow = PairSetup.transient()
    link.run(flow, "4", "application/octet-stream")
    assert len(flow.result.session_key) == 64
    assert link.accessory.encrypted
    cipher = ChannelCipher(control_keys(flow.result.session_key))
    reply = link.accessory.feed(cipher.encrypt(b"GET /info RTSP/1.0\r\nCSeq: 9\r\n\r\n"))
    (response,) = MessageParser().feed(cipher.decrypt(reply))
    assert isinstance(response, Response)
    assert response.status == 200
    assert plistlib.loads(response.body)["model"] == "AudioAccessory5,1"


def test_pin_setup_stores_keys_on_both_sides() -> None:
    device = AccessoryDevice()
    seed = bytes(range(32))
    credentials = _pin_pair(device, seed)
    assert credentials.seed == seed
    assert credentials.accessory_ltpk == device.public_key
    assert device.paired == {IDENTIFIER.encode(): credentials.public_key}


def test_verify_with_stored_credentials_yields_matching_session() -> None:
    device = AccessoryDevice()
    credentials = _pin_pair(device)
    link = Link(device)
    flow = PairVerify(credentials, IDENTIFIER)
    link.run(flow, "3", "application/octet-stream")
    assert flow.result.accessory_id == device.device_id.encode()
    cipher = ChannelCipher(control_keys(flow.result.shared_secret))
    reply = link.accessory.feed(cipher.encrypt(b"OPTIONS * RTSP/1.0\r\nCSeq: 4\r\n\r\n"))
    assert cipher.decrypt(reply).startswith(b"RTSP/1.0 200 OK\r\nCSeq: 4\r\n")


def test_wrong_pin_raises_authentication_error_at_m4() -> None:
    device = AccessoryDevice()
    link = Link(device)
    link.post("/pair-pin-start", b"", {"X-Apple-HKP": "3"})
    wrong = "0000" if device.displayed_pin != "0000" else "1111"
    flow = PairSetup.with_pin(wrong, IDENTIFIER)
    with pytest.raises(AuthenticationError):
        link.run(flow, "3", "application/octet-stream")
    assert device.paired == {}
    with pytest.raises(ProtocolViolation):
        flow.handle(b"")  # a failed flow accepts nothing more


def test_backoff_error_carries_delay() -> None:
    link = Link(AccessoryDevice(backoff=True, retry_delay=45))
    with pytest.raises(BackoffError) as info:
        link.run(PairSetup.transient(), "4", "application/octet-stream")
    assert info.value.retry_delay == 45


def test_verify_rejects_accessory_with_other_long_term_key() -> None:
    device = AccessoryDevice()
    credentials = _pin_pair(device)
    impostor = HapCredentials(
        seed=credentials.seed,
        accessory_ltpk=Ed25519PrivateKey.generate().public_key().public_bytes_raw(),
    )
    with pytest.raises(ProtocolViolation, match="M2"):
        Link(device).run(PairVerify(impostor, IDENTIFIER), "3", "application/octet-stream")


def test_unknown_controller_gets_authentication_error() -> None:
    device = AccessoryDevice()
    stranger = HapCredentials(seed=bytes(32), accessory_ltpk=device.public_key)
    with pytest.raises(AuthenticationError):
        Link(device).run(PairVerify(stranger, IDENTIFIER), "3", "application/octet-stream")
    assert not Link(device).accessory.encrypted


def test_tampered_m2_encrypted_data_is_a_protocol_violation() -> None:
    device = AccessoryDevice()
    credentials = _pin_pair(device)
    link = Link(device)
    flow = PairVerify(credentials, IDENTIFIER)
    reply = link.post(flow.path, flow.start(), {"X-Apple-HKP": "3"}).body
    tlv = decode_tlv(reply)
    tlv[5] = bytes([tlv[5][0] ^ 1]) + tlv[5][1:]
    with pytest.raises(ProtocolViolation, match="tag"):
        flow.handle(encode_tlv(tlv.items()))


def test_wrong_server_proof_is_a_protocol_violation() -> None:
    link = Link(AccessoryDevice())
    flow = PairSetup.transient()
    m2 = link.post(flow.path, flow.start(), {"X-Apple-HKP": "4"}).body
    flow.handle(m2)
    with pytest.raises(ProtocolViolation, match="proof"):
        flow.handle(encode_tlv([(6, b"\x04"), (4, bytes(64))]))


def test_flow_misuse_is_reported() -> None:
    flow = PairSetup.transient()
    with pytest.raises(ProtocolViolation):
        flow.handle(b"")
    with pytest.raises(ProtocolViolation):
        _ = flow.result
    flow.start()
    with pytest.raises(ProtocolViolation):
        flow.start()


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=600))
def test_garbage_replies_raise_only_pairing_errors(reply: bytes) -> None:
    for flow in (
        PairSetup.transient(),
        PairVerify(HapCredentials(bytes(32), bytes(32)), IDENTIFIER),
        LegacyPairVerify(LegacyCredentials(bytes(8), bytes(32))),
    ):
        flow.start()
        try:
            flow.handle(reply)
        except HapPairingError:
            continue


def test_legacy_setup_and_verify_against_twin() -> None:
    device = AccessoryDevice()
    link = Link(device)
    link.post("/pair-pin-start", b"", {})
    assert device.displayed_pin is not None
    setup = LegacyPairSetup(device.displayed_pin)
    link.run(setup, None, "application/x-apple-binary-plist")
    credentials = setup.result
    assert device.legacy.paired == {
        credentials.user: credentials.signing_key.public_key().public_bytes_raw()
    }
    verify = LegacyPairVerify(credentials)
    link.run(verify, None, "application/octet-stream")
    assert len(verify.result.shared_secret) == 32
    assert not link.accessory.encrypted  # legacy RTSP continues in clear


def test_legacy_wrong_pin_and_unknown_key_are_refused() -> None:
    device = AccessoryDevice()
    link = Link(device)
    link.post("/pair-pin-start", b"", {})
    wrong = "0000" if device.displayed_pin != "0000" else "1111"
    flow = LegacyPairSetup(wrong)
    first = link.post(flow.path, flow.start(), {}).body
    second = flow.handle(first)
    assert second is not None
    assert link.post(flow.path, second, {}).status == 470
    verify = LegacyPairVerify(LegacyCredentials.generate())
    assert link.post(verify.path, verify.start(), {}).status == 470
