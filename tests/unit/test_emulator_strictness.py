"""The emulated receivers are strict by default: every refusal is recorded in one log, and a
clean exit from the emulator fails the test on any error the test did not declare."""

from __future__ import annotations

import asyncio
import plistlib

import pytest

from airplay_provider.pairing.client import transient_pair
from airplay_provider.protocol.hap.pair_setup import PairSetup
from airplay_provider.protocol.hap.tlv8 import decode_tlv
from airplay_provider.rtsp_connection import RtspConnection
from tests.receivers.ap2_emulator import Ap2Emulator
from tests.receivers.ap2_emulator_core import AccessoryConnection, AccessoryDevice
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.raop_emulator import RaopEmulator
from tests.receivers.strict import EmulatorViolation, ErrorLog

PLIST = "application/x-apple-binary-plist"
TIMEOUT = 5.0


def test_error_log_excuses_only_declared_errors() -> None:
    log = ErrorLog(["^SETUP refused"])
    log.record("SETUP refused: can not handle NTP streams")
    log.check("emulator")  # declared: passes
    log.record("audio packet 7 does not decode")
    assert log.unexpected() == ["audio packet 7 does not decode"]
    with pytest.raises(EmulatorViolation, match="audio packet 7"):
        log.check("emulator")
    log.expect(r"audio packet \d+")
    log.check("emulator")
    assert log == ["SETUP refused: can not handle NTP streams", "audio packet 7 does not decode"]


def test_unique_log_keeps_one_copy_of_a_message() -> None:
    unique, every = ErrorLog(unique=True), ErrorLog()
    for log in (unique, every):
        log.record("late")
        log.record("late")
    assert unique == ["late"]
    assert every == ["late", "late"]


async def _raop_status(port: int, method: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"{method} rtsp://127.0.0.1/1 RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    finally:
        writer.close()
        await writer.wait_closed()
    return int(head.split(b" ")[1])


async def _record_too_early(*, then_fail: bool = False) -> RaopEmulator:
    """A RECORD before ANNOUNCE (refused with 455) inside the emulator's block."""
    async with RaopEmulator() as emulator:
        assert await _raop_status(emulator.port, "RECORD") == 455
        if then_fail:
            raise LookupError("the test's own failure")
    return emulator


async def test_raop_emulator_fails_a_clean_exit_on_an_undeclared_refusal() -> None:
    with pytest.raises(EmulatorViolation, match="RECORD refused with 455"):
        await _record_too_early()


async def test_raop_emulator_passes_a_declared_refusal() -> None:
    async with RaopEmulator(expect_errors=["RECORD refused with 455"]) as emulator:
        assert await _raop_status(emulator.port, "RECORD") == 455
        emulator.expect_error("^SETUP refused with 455")
        assert await _raop_status(emulator.port, "SETUP") == 455
    assert emulator.errors == [
        "RECORD refused with 455: not valid in state idle",
        "SETUP refused with 455: not valid in state idle",
    ]


async def test_a_failing_test_keeps_its_own_failure() -> None:
    with pytest.raises(LookupError, match="the test's own"):
        await _record_too_early(then_fail=True)


async def test_raop_digest_challenge_is_not_an_error_but_wrong_credentials_are() -> None:
    async with RaopEmulator(password="secret", expect_errors=["wrong credentials"]) as emulator:
        reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
        try:
            wrong = 'Authorization: Digest username="x", response="0"\r\n'
            for cseq, auth in ((1, ""), (2, wrong)):
                writer.write(f"OPTIONS * RTSP/1.0\r\nCSeq: {cseq}\r\n{auth}\r\n".encode())
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
                assert head.startswith(b"RTSP/1.0 401")
        finally:
            writer.close()
            await writer.wait_closed()
    assert emulator.errors == ["OPTIONS refused with 401: wrong credentials"]


def test_ap2_core_records_refusals_it_answered_silently_before() -> None:
    device = AccessoryDevice()
    connection = AccessoryConnection(device)
    reply = connection.feed(b"GET /nowhere RTSP/1.0\r\nCSeq: 1\r\n\r\n")
    assert reply.startswith(b"RTSP/1.0 404")
    m1 = PairSetup.with_pin("1234", "0123456789ABCDEF").start()  # no PIN shown yet
    head = f"POST /pair-setup RTSP/1.0\r\nCSeq: 2\r\nX-Apple-HKP: 3\r\nContent-Length: {len(m1)}"
    reply = connection.feed(head.encode() + b"\r\n\r\n" + m1)
    assert decode_tlv(reply.partition(b"\r\n\r\n")[2]) == {6: b"\x02", 7: b"\x02"}
    connection.feed(b"\x00garbage\r\n\r\n")
    assert device.errors == [
        "GET /nowhere: refused with 404 Not Found",
        "POST /pair-setup: HAP error authentication in M2",
        "connection closed: bad request line '\\x00garbage'",
    ]


async def _setup_without_a_session() -> None:
    async with Ap2Emulator() as emulator:  # no session handler: SETUP is refused
        reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
        encrypted = await transient_pair(RtspConnection(reader, writer))
        try:
            response = await encrypted.request("SETUP", "rtsp://127.0.0.1/1")
        finally:
            await encrypted.close()
        assert response.status == 404


async def test_ap2_emulator_fails_a_clean_exit_on_an_undeclared_refusal() -> None:
    with pytest.raises(EmulatorViolation, match=r"SETUP rtsp://127\.0\.0\.1/1: refused with 404"):
        await _setup_without_a_session()


async def test_ap2_receiver_records_session_refusals_once() -> None:
    async with Ap2Receiver(
        session_options={"timing_modes": frozenset({"PTP"})},
        expect_errors=["SETUP refused", "RECORD"],
    ) as receiver:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        encrypted = await transient_pair(RtspConnection(reader, writer))
        try:
            record = await encrypted.request("RECORD", "rtsp://127.0.0.1/1")
            ntp = {"sessionUUID": "U", "timingProtocol": "NTP", "timingPort": 6003}
            setup = await encrypted.request(
                "SETUP",
                "rtsp://127.0.0.1/1",
                headers={"Content-Type": PLIST},
                body=plistlib.dumps(ntp, fmt=plistlib.FMT_BINARY),
            )
        finally:
            await encrypted.close()
    assert (record.status, setup.status) == (455, 400)
    # the session's own message stands for its refusal; the silent 455 is recorded by the core
    assert receiver.errors == [
        "RECORD rtsp://127.0.0.1/1: refused with 455 Method Not Valid In This State",
        "SETUP refused: can not handle NTP streams",
    ]
