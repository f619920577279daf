"""The AirPlay 2 emulator's accessory core: strictness and robustness (sans-I/O)."""

from __future__ import annotations

import plistlib

from hypothesis import given, settings
from hypothesis import strategies as st

from airplay_provider.protocol.hap.pair_setup import PairSetup
from airplay_provider.protocol.hap.tlv8 import decode_tlv
from tests.receivers.ap2_emulator_core import (
    AccessoryConnection,
    AccessoryDevice,
    BadRequest,
    RequestParser,
)


def _post(path: str, body: bytes, *headers: str) -> bytes:
    head = "".join(f"{header}\r\n" for header in headers)
    return (
        f"POST {path} RTSP/1.0\r\nCSeq: 1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def _status_and_body(wire: bytes) -> tuple[bytes, bytes]:
    head, _, body = wire.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


def test_parser_handles_split_and_pipelined_requests() -> None:
    parser = RequestParser()
    wire = _post("/pair-setup", b"\x06\x01\x01", "X-Apple-HKP: 4") + b"GET /info RTSP/1.0\r\n\r\n"
    assert parser.feed(wire[:10]) == []
    first, second = parser.feed(wire[10:])
    assert (first.method, first.path, first.body) == ("POST", "/pair-setup", b"\x06\x01\x01")
    assert first.headers["x-apple-hkp"] == "4"
    assert (second.method, second.path) == ("GET", "/info")


def test_info_plist_advertises_airplay2_features() -> None:
    device = AccessoryDevice()
    status, body = _status_and_body(AccessoryConnection(device).feed(b"GET /info RTSP/1.0\r\n\r\n"))
    assert status == b"RTSP/1.0 200 OK"
    info = plistlib.loads(body)
    for bit in (9, 38, 41, 46, 48):
        assert info["features"] >> bit & 1
    assert info["pk"] == device.public_key
    assert info["deviceID"] == device.device_id
    assert info["model"] == "AudioAccessory5,1"


def test_pair_setup_requires_a_valid_hkp_header() -> None:
    m1 = PairSetup.transient().start()
    for headers in ((), ("X-Apple-HKP: 5",)):
        status, _ = _status_and_body(
            AccessoryConnection(AccessoryDevice()).feed(_post("/pair-setup", m1, *headers))
        )
        assert status == b"RTSP/1.0 400 Bad Request"


def test_transient_flag_must_match_hkp() -> None:
    m1 = PairSetup.transient().start()
    wire = AccessoryConnection(AccessoryDevice()).feed(_post("/pair-setup", m1, "X-Apple-HKP: 3"))
    _, body = _status_and_body(wire)
    assert decode_tlv(body) == {6: b"\x02", 7: b"\x01"}


def test_pin_setup_without_displayed_pin_is_refused() -> None:
    m1 = PairSetup.with_pin("1234", "0123456789ABCDEF").start()
    wire = AccessoryConnection(AccessoryDevice()).feed(_post("/pair-setup", m1, "X-Apple-HKP: 3"))
    assert decode_tlv(_status_and_body(wire)[1]) == {6: b"\x02", 7: b"\x02"}


def test_plaintext_pipelined_after_pairing_closes_the_connection() -> None:
    connection = AccessoryConnection(AccessoryDevice())
    flow = PairSetup.transient()
    m2 = _status_and_body(connection.feed(_post("/pair-setup", flow.start(), "X-Apple-HKP: 4")))[1]
    m3 = flow.handle(m2)
    assert m3 is not None
    connection.feed(_post("/pair-setup", m3, "X-Apple-HKP: 4") + b"GET /info RTSP/1.0\r\n\r\n")
    assert connection.closed
    assert connection.close_reason == "plaintext after pairing"


def test_garbage_closes_instead_of_raising() -> None:
    connection = AccessoryConnection(AccessoryDevice())
    assert connection.feed(b"\x00\x01garbage\r\n\r\n") == b""
    assert connection.closed
    assert connection.feed(b"GET /info RTSP/1.0\r\n\r\n") == b""


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=400))
def test_request_parser_raises_only_bad_request(data: bytes) -> None:
    try:
        requests = RequestParser().feed(data)
    except BadRequest:
        return
    assert all(request.method for request in requests)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["/pair-setup", "/pair-verify", "/pair-setup-pin"]), st.binary(max_size=300))
def test_hostile_pairing_bodies_never_crash_the_accessory(path: str, body: bytes) -> None:
    for headers in ((), ("X-Apple-HKP: 3",), ("X-Apple-HKP: 4",)):
        wire = AccessoryConnection(AccessoryDevice()).feed(_post(path, body, *headers))
        assert wire.startswith(b"RTSP/1.0 ")
