"""Pairing round trips over loopback TCP against the AirPlay 2 emulator."""

from __future__ import annotations

import asyncio
import plistlib
from collections.abc import AsyncIterator

import pytest

from airplay_provider.pairing.client import (
    PinProvider,
    legacy_pair_verify,
    legacy_pin_pair_setup,
    pair_verify,
    pin_pair_setup,
    transient_pair,
)
from airplay_provider.protocol.hap.credentials import HapCredentials
from airplay_provider.protocol.hap.errors import (
    AuthenticationError,
    BackoffError,
    HttpStatusError,
)
from airplay_provider.rtsp_connection import RtspConnection
from tests.receivers.ap2_emulator import Ap2Emulator

IDENTIFIER = "00112233AABBCCDD"
EOF_TIMEOUT = 5.0


@pytest.fixture
async def emulator() -> AsyncIterator[Ap2Emulator]:
    async with Ap2Emulator() as running:
        yield running


async def _connect(emulator: Ap2Emulator) -> RtspConnection:
    reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
    return RtspConnection(reader, writer, headers={"DACP-ID": IDENTIFIER})


def _displayed(emulator: Ap2Emulator) -> PinProvider:
    async def provider() -> str:
        assert emulator.displayed_pin is not None
        return emulator.displayed_pin

    return provider


def _wrong(emulator: Ap2Emulator) -> PinProvider:
    async def provider() -> str:
        return "0000" if emulator.displayed_pin != "0000" else "1111"

    return provider


async def test_transient_pairing_then_encrypted_info(emulator: Ap2Emulator) -> None:
    connection = await _connect(emulator)
    clear = await connection.request("GET", "/info")
    assert plistlib.loads(clear.body)["deviceID"] == emulator.device.device_id
    encrypted = await transient_pair(connection)
    try:
        info = await encrypted.request("GET", "/info")
        assert info.status == 200
        assert plistlib.loads(info.body)["pk"] == emulator.device.public_key
        options = await encrypted.request("OPTIONS", "*")
        assert options.status == 200
        assert options.headers.get("CSeq") == str(encrypted.cseq)
    finally:
        await encrypted.close()
    assert emulator.connections[0].encrypted


async def test_pin_setup_then_verify_with_stored_credentials(emulator: Ap2Emulator) -> None:
    connection = await _connect(emulator)
    try:
        credentials = await pin_pair_setup(connection, IDENTIFIER, _displayed(emulator))
    finally:
        await connection.close()
    stored = HapCredentials.parse(credentials.serialize())
    assert stored.accessory_ltpk == emulator.device.public_key
    assert emulator.device.paired[IDENTIFIER.encode()] == stored.public_key

    encrypted = await pair_verify(await _connect(emulator), stored, IDENTIFIER)
    try:
        response = await encrypted.request("OPTIONS", "*")
        assert response.status == 200
    finally:
        await encrypted.close()


async def test_wrong_pin_is_an_authentication_error(emulator: Ap2Emulator) -> None:
    emulator.expect_error("POST /pair-setup: HAP error authentication in M4")
    connection = await _connect(emulator)
    try:
        with pytest.raises(AuthenticationError):
            await pin_pair_setup(connection, IDENTIFIER, _wrong(emulator))
    finally:
        await connection.close()
    assert emulator.device.paired == {}


async def test_backoff_error() -> None:
    backoff = ["POST /pair-setup: HAP error backoff in M2"]
    async with Ap2Emulator(backoff=True, retry_delay=60, expect_errors=backoff) as emulator:
        connection = await _connect(emulator)
        try:
            with pytest.raises(BackoffError) as info:
                await transient_pair(connection)
        finally:
            await connection.close()
    assert info.value.retry_delay == 60


async def test_unknown_controller_is_refused(emulator: Ap2Emulator) -> None:
    emulator.expect_error("POST /pair-verify: HAP error authentication in M4")
    stranger = HapCredentials(seed=bytes(range(32)), accessory_ltpk=emulator.device.public_key)
    connection = await _connect(emulator)
    try:
        with pytest.raises(AuthenticationError):
            await pair_verify(connection, stranger, IDENTIFIER)
    finally:
        await connection.close()


async def test_wrong_hkp_header_is_rejected(emulator: Ap2Emulator) -> None:
    emulator.expect_error("POST /pair-setup: refused with 400")
    connection = await _connect(emulator)
    try:
        response = await connection.request(
            "POST",
            "/pair-setup",
            body=bytes.fromhex("060101000100130110"),
            headers={"X-Apple-HKP": "7", "Content-Type": "application/octet-stream"},
        )
    finally:
        await connection.close()
    assert response.status == 400


async def _raw_after_transient(emulator: Ap2Emulator, payload: bytes) -> bytes:
    """Pair transiently, then write ``payload`` raw and return what the receiver sends."""
    encrypted = await transient_pair(await _connect(emulator))
    try:
        encrypted.writer.write(payload)
        await encrypted.writer.drain()
        return await asyncio.wait_for(encrypted.reader.read(), EOF_TIMEOUT)
    finally:
        await encrypted.close()


async def test_tampered_ciphertext_closes_the_connection(emulator: Ap2Emulator) -> None:
    emulator.expect_error("connection closed: bad tag")
    encrypted = await transient_pair(await _connect(emulator))
    try:
        block = bytearray(encrypted._encode(b"GET /info RTSP/1.0\r\nCSeq: 9\r\n\r\n"))
        block[-1] ^= 0x80
        encrypted.writer.write(bytes(block))
        await encrypted.writer.drain()
        assert await asyncio.wait_for(encrypted.reader.read(), EOF_TIMEOUT) == b""
    finally:
        await encrypted.close()
    assert emulator.connections[-1].close_reason == "bad tag"


async def test_plaintext_after_pairing_closes_the_connection(emulator: Ap2Emulator) -> None:
    emulator.expect_error("connection closed: block too long: plaintext after pairing")
    assert await _raw_after_transient(emulator, b"GET /info RTSP/1.0\r\nCSeq: 9\r\n\r\n") == b""
    assert emulator.connections[-1].closed


async def test_legacy_pairing_round_trip(emulator: Ap2Emulator) -> None:
    connection = await _connect(emulator)
    try:
        credentials = await legacy_pin_pair_setup(connection, _displayed(emulator))
        await legacy_pair_verify(connection, credentials)
        response = await connection.request("OPTIONS", "*")
        assert response.status == 200
    finally:
        await connection.close()
    assert credentials.user in emulator.device.legacy.paired


async def test_legacy_wrong_pin_is_refused(emulator: Ap2Emulator) -> None:
    emulator.expect_error("POST /pair-setup-pin: refused with 470")
    connection = await _connect(emulator)
    try:
        with pytest.raises(HttpStatusError) as info:
            await legacy_pin_pair_setup(connection, _wrong(emulator))
    finally:
        await connection.close()
    assert info.value.status == 470


async def test_silent_receiver_times_out() -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        connection = RtspConnection(reader, writer)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(transient_pair(connection, request_timeout=0.2), 5.0)
        await connection.close()
    finally:
        server.close()
        await server.wait_closed()
