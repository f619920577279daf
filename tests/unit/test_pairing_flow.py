"""PairingSession end to end against the AirPlay 2 emulator (HAP and legacy) on loopback."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import AsyncIterator

import pytest

from airplay_provider.pairing.attempt import (
    PairingAttemptState,
    PairingSession,
    PairingTarget,
    normalize_pin,
)
from airplay_provider.pairing.client import legacy_pair_verify, pair_verify
from airplay_provider.pairing.errors import (
    DeviceUnreachableError,
    InvalidPinError,
    PairingBackoffError,
    PairingExpiredError,
    PairingRefusedError,
    PairingStateError,
    WrongPinError,
)
from airplay_provider.pairing.manager import credentials_key
from airplay_provider.protocol.hap.credentials import HapCredentials, LegacyCredentials
from airplay_provider.protocol.hap.errors import (
    AuthenticationError,
    BackoffError,
    BusyError,
    HttpStatusError,
    MaxPeersError,
    MaxTriesError,
    ProtocolViolation,
)
from airplay_provider.protocol.txt import StreamingProtocol, merge_records, parse_service
from airplay_provider.rtsp_connection import RtspConnection
from tests.receivers.ap2_emulator import Ap2Emulator

IDENTIFIER = "A1B2C3D4E5F60718"
HAP = StreamingProtocol.AIRPLAY2
LEGACY = StreamingProtocol.RAOP


@pytest.fixture
async def emulator() -> AsyncIterator[Ap2Emulator]:
    async with Ap2Emulator() as running:
        yield running


def target(emulator: Ap2Emulator, protocol: StreamingProtocol) -> PairingTarget:
    return PairingTarget("127.0.0.1", emulator.port, protocol, "Emulated")


def wrong_pin(emulator: Ap2Emulator) -> str:
    return "0000" if emulator.displayed_pin != "0000" else "1111"


async def attempt_ended(session: PairingSession) -> None:
    """Wait (bounded) until the session's attempt task is over."""
    assert session._task is not None
    await asyncio.wait_for(asyncio.wait({session._task}), 5.0)


async def connections_closed(emulator: Ap2Emulator) -> None:
    """Wait (bounded) until the emulator has served every connection to its end."""
    if emulator._tasks:
        await asyncio.wait_for(asyncio.wait(set(emulator._tasks)), 5.0)
    assert emulator._writers == set()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_hap_right_pin_yields_credentials_that_pair_verify(
    emulator: Ap2Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with PairingSession(target(emulator, HAP), IDENTIFIER) as session:
        assert emulator.displayed_pin is None
        await session.start()
        assert session.state is PairingAttemptState.WAITING_FOR_PIN
        pin = emulator.displayed_pin
        assert pin is not None
        serialized = await session.finish(f" {pin[:2]}-{pin[2:]} ")
        assert session.state is PairingAttemptState.PAIRED
    credentials = HapCredentials.parse(serialized)
    assert len(serialized) == 192
    assert credentials.accessory_ltpk == emulator.device.public_key
    assert emulator.device.paired[IDENTIFIER.encode()] == credentials.public_key
    # the stored credentials work for pair-verify with our identifier
    reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
    encrypted = await pair_verify(RtspConnection(reader, writer), credentials, IDENTIFIER)
    try:
        assert (await encrypted.request("OPTIONS", "*")).status == 200
    finally:
        await encrypted.close()
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("airplay_"))
    assert "paired with Emulated" in ours
    assert serialized not in ours
    assert credentials.seed.hex() not in ours
    assert not re.search(rf"\b{pin}\b", ours)
    # one connection for the whole attempt, closed at the end
    assert [c.requests[0].path for c in emulator.connections[:1]] == ["/pair-pin-start"]


async def test_hap_wrong_pin_is_a_wrong_pin_error(emulator: Ap2Emulator) -> None:
    emulator.expect_error("POST /pair-setup: HAP error authentication in M4")
    async with PairingSession(target(emulator, HAP), IDENTIFIER) as session:
        await session.start()
        with pytest.raises(WrongPinError, match="refused the PIN"):
            await session.finish(wrong_pin(emulator))
        assert session.state is PairingAttemptState.FAILED
        with pytest.raises(PairingStateError):
            await session.finish(emulator.displayed_pin or "")
    assert emulator.device.paired == {}


async def test_backoff_reports_the_retry_delay() -> None:
    async with (
        Ap2Emulator(
            backoff=True, retry_delay=60, expect_errors=["/pair-setup: HAP error backoff"]
        ) as emulator,
        PairingSession(target(emulator, HAP), IDENTIFIER) as session,
    ):
        await session.start()
        with pytest.raises(PairingBackoffError, match="try again in 60 s") as info:
            await session.finish(emulator.displayed_pin or "")
    assert info.value.retry_delay == 60


async def test_legacy_right_pin_then_legacy_verify(emulator: Ap2Emulator) -> None:
    async with PairingSession(target(emulator, LEGACY), IDENTIFIER) as session:
        await session.start()
        assert emulator.displayed_pin is not None
        serialized = await session.finish(emulator.displayed_pin)
    credentials = LegacyCredentials.parse(serialized)
    assert re.fullmatch(r"[0-9A-F]{16}:[0-9a-f]{64}", serialized)
    assert credentials.user in emulator.device.legacy.paired
    reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
    connection = RtspConnection(reader, writer)
    try:
        await legacy_pair_verify(connection, credentials)
        assert (await connection.request("OPTIONS", "*")).status == 200
    finally:
        await connection.close()


async def test_legacy_wrong_pin_is_a_wrong_pin_error(emulator: Ap2Emulator) -> None:
    emulator.expect_error("POST /pair-setup-pin: refused with 470")
    async with PairingSession(target(emulator, LEGACY), IDENTIFIER) as session:
        await session.start()
        with pytest.raises(WrongPinError):
            await session.finish(wrong_pin(emulator))
    assert emulator.device.legacy.paired == {}


async def test_malformed_pin_keeps_the_session_waiting(emulator: Ap2Emulator) -> None:
    async with PairingSession(target(emulator, HAP), IDENTIFIER) as session:
        await session.start()
        with pytest.raises(InvalidPinError, match="4 digits"):
            await session.finish("12a4")
        assert session.state is PairingAttemptState.WAITING_FOR_PIN
        assert emulator.displayed_pin is not None
        assert len(await session.finish(emulator.displayed_pin)) == 192


async def test_unreachable_device() -> None:
    unreachable = PairingTarget("127.0.0.1", closed_port(), HAP)
    async with PairingSession(unreachable, IDENTIFIER) as session:
        with pytest.raises(DeviceUnreachableError, match=r"127\.0\.0\.1:\d+ failed"):
            await session.start()
        assert session.state is PairingAttemptState.FAILED


async def test_pairing_falls_back_to_the_device_s_other_address(emulator: Ap2Emulator) -> None:
    # announced first at 127.0.0.2, where nothing listens (refused); the emulator is on .1
    moved = PairingTarget("127.0.0.2", emulator.port, HAP, "Emulated", fallbacks=("127.0.0.1",))
    async with PairingSession(moved, IDENTIFIER) as session:
        await session.start()
        assert session.state is PairingAttemptState.WAITING_FOR_PIN
        assert emulator.displayed_pin is not None
        assert len(await session.finish(emulator.displayed_pin)) == 192
    nowhere = PairingTarget("127.0.0.2", closed_port(), HAP, fallbacks=("127.0.0.3",))
    async with PairingSession(nowhere, IDENTIFIER) as session:
        with pytest.raises(DeviceUnreachableError, match=r"127\.0\.0\.2:\d+ failed"):
            await session.start()


async def test_silent_device_times_out() -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        silent = PairingTarget("127.0.0.1", port, HAP)
        async with PairingSession(silent, IDENTIFIER, request_timeout=0.2) as session:
            with pytest.raises(DeviceUnreachableError, match="no answer"):
                await asyncio.wait_for(session.start(), 5.0)
    finally:
        server.close()
        await server.wait_closed()


async def test_pin_not_entered_in_time_expires(emulator: Ap2Emulator) -> None:
    async with PairingSession(target(emulator, HAP), IDENTIFIER, pin_timeout=0.1) as session:
        await session.start()
        await attempt_ended(session)
        assert session.state is PairingAttemptState.FAILED
        await connections_closed(emulator)  # the attempt closed its connection by itself
        with pytest.raises(PairingExpiredError, match=r"no PIN entered within 0\.1 s"):
            await session.finish("1234")
        assert session.state is PairingAttemptState.FAILED


async def test_state_errors(emulator: Ap2Emulator) -> None:
    session = PairingSession(target(emulator, HAP), IDENTIFIER)
    with pytest.raises(PairingStateError, match="start pairing"):
        await session.finish("1234")
    await session.start()
    with pytest.raises(PairingStateError, match="already started"):
        await session.start()
    assert session.active
    await session.close()
    assert session.state is PairingAttemptState.CLOSED
    assert not session.active
    with pytest.raises(ValueError, match="16 upper-case hex"):
        PairingSession(target(emulator, HAP), "not-an-id")


async def test_close_while_waiting_releases_the_connection(emulator: Ap2Emulator) -> None:
    session = PairingSession(target(emulator, HAP), IDENTIFIER)
    await session.start()
    assert len(emulator._writers) == 1
    await session.close()
    await connections_closed(emulator)
    assert session.state is PairingAttemptState.CLOSED


async def test_cancelled_start_leaves_no_task(emulator: Ap2Emulator) -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    session = PairingSession(PairingTarget("127.0.0.1", port, HAP), IDENTIFIER)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(session.start(), 0.2)
        assert session.state is PairingAttemptState.CLOSED
        assert [t for t in asyncio.all_tasks() if t.get_name() == "airplay-pairing"] == []
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1234", "1234"), (" 12-34 ", "1234"), ("1234 5678", "12345678"), ("0000", "0000")],
)
def test_normalize_pin(text: str, expected: str) -> None:
    assert normalize_pin(text) == expected


@pytest.mark.parametrize("text", ["", "123", "12a4", "123456789", "١٢٣٤", "12\n34"])
def test_normalize_pin_refuses(text: str) -> None:
    with pytest.raises(InvalidPinError):
        normalize_pin(text)


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (AuthenticationError(), WrongPinError, "refused the PIN"),
        (BackoffError(None), PairingBackoffError, "try again later"),
        (MaxTriesError(), PairingRefusedError, "too many wrong PINs"),
        (MaxPeersError(), PairingRefusedError, "another controller"),
        (BusyError(), PairingRefusedError, "busy"),
        (HttpStatusError(403, "Forbidden"), PairingRefusedError, "403 to the request to show"),
        (ProtocolViolation("bad tag"), PairingRefusedError, "broke the pairing protocol"),
        (ConnectionResetError(104, "reset"), DeviceUnreachableError, "failed or was lost"),
    ],
)
async def test_device_errors_become_user_messages(
    error: Exception, kind: type[Exception], message: str
) -> None:
    # Drive the real session with a device double that fails the way `error` describes.
    session = PairingSession(PairingTarget("127.0.0.1", 1, HAP), IDENTIFIER)

    async def attempt() -> str:
        raise error

    session._attempt = attempt  # type: ignore[method-assign]
    with pytest.raises(kind, match=message):
        await session.start()


def test_credentials_keys_and_targets() -> None:
    assert credentials_key(HAP) == "airplay_credentials"
    assert credentials_key(LEGACY) == "raop_credentials"
    raop = parse_service(
        "_raop._tcp.local.",
        "AABBCCDDEEFF@TV._raop._tcp.local.",
        port=5000,
        addresses=["192.0.2.5"],
        properties={"sf": "0x200"},
    )
    airplay = parse_service(
        "_airplay._tcp.local.",
        "TV._airplay._tcp.local.",
        port=7000,
        addresses=["192.0.2.5"],
        properties={"deviceid": "AA:BB:CC:DD:EE:FF", "flags": "0x200"},
    )
    both = PairingTarget.for_device(merge_records(raop, airplay), LEGACY)
    assert (both.address, both.port, both.protocol, both.label) == (
        "192.0.2.5",
        7000,
        LEGACY,
        "RAOP",
    )
    only_raop = PairingTarget.for_device(merge_records(raop, None), LEGACY)
    assert only_raop.port == 5000
    nowhere = parse_service(
        "_raop._tcp.local.",
        "AABBCCDDEEFF@TV._raop._tcp.local.",
        port=5000,
        addresses=[],
        properties={},
    )
    with pytest.raises(DeviceUnreachableError, match="no usable address"):
        PairingTarget.for_device(merge_records(nowhere, None), LEGACY)
