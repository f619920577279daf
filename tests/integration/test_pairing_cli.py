"""`airplay-provider pair` as a subprocess against emulated receivers on loopback.

The emulator is announced over zeroconf bound to 127.0.0.1 (or given with ``--address``); the
credentials the command stores are then used by ``bin/cliap2`` for pair-verify.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from airplay_provider.protocol.hap.credentials import HapCredentials, LegacyCredentials
from tests.receivers.ap2_emulator import Ap2Emulator
from tests.receivers.ap2_emulator_core import AccessoryDevice
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_sender import NO_PTP_FEATURES, Cliap2, ntp_in

HOST = "127.0.0.1"
AIRPLAY = "_airplay._tcp.local."
MAC = "AA:BB:CC:DD:EE:FF"
PLAYER_ID = "apaabbccddeeff"
NAME = "Den Speaker"
FIXED_PIN = "4821"
PIN_REQUIRED = 0x8
RUN_TIMEOUT_S = 60.0


def show_fixed_pin(device: AccessoryDevice) -> None:
    """Make the device's display predictable, so a script can pass ``--pin``."""

    def show() -> str:
        device.displayed_pin = FIXED_PIN
        device.legacy.pin = FIXED_PIN
        return FIXED_PIN

    device.show_pin = show  # type: ignore[method-assign]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


async def run_pair(
    config: Path, *args: str, stdin_after: tuple[str, Ap2Emulator] | None = None
) -> Result:
    """Run ``airplay-provider pair ARGS`` with its config at ``config``.

    ``stdin_after=(marker, emulator)``: once stdout shows ``marker``, type the PIN the
    emulator displays (the interactive path).
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "airplay_provider.host.cli",
        "pair",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "AIRPLAY_PROVIDER_CONFIG": str(config)},
    )
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    stdout = bytearray()
    pending = [stdin_after] if stdin_after else []

    async def read_stdout() -> None:
        assert process.stdout is not None
        assert process.stdin is not None
        while chunk := await process.stdout.read(1024):
            stdout.extend(chunk)
            if pending and pending[0][0].encode() in stdout:
                pin = pending.pop()[1].displayed_pin
                assert pin is not None
                process.stdin.write(f"{pin}\n".encode())
                await process.stdin.drain()

    try:
        async with asyncio.timeout(RUN_TIMEOUT_S):
            _, stderr, code = await asyncio.gather(
                read_stdout(), process.stderr.read(), process.wait()
            )
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        process.stdin.close()
    return Result(code, stdout.decode(), stderr.decode())


async def advertise(zeroconf: AsyncZeroconf, port: int, flags: int = PIN_REQUIRED) -> None:
    features = f"0x{NO_PTP_FEATURES & 0xFFFFFFFF:X},0x{NO_PTP_FEATURES >> 32:X}"
    info = AsyncServiceInfo(
        AIRPLAY,
        f"{NAME}.{AIRPLAY}",
        port=port,
        properties={
            "deviceid": MAC,
            "features": features,
            "flags": f"0x{flags:X}",
            "model": "AudioAccessory5,1",
            "srcvers": "770.8.1",
        },
        server="den-speaker.local.",
        parsed_addresses=[HOST],
    )
    await asyncio.wait_for(await zeroconf.async_register_service(info), 10.0)


def stored(config: Path) -> dict[str, object]:
    values = json.loads(config.read_text())["players"][PLAYER_ID]["values"]
    assert isinstance(values, dict)
    return values


def assert_no_secret(result: Result, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout
        assert secret not in result.stderr


async def test_pair_by_name_then_cliap2_pair_verifies(
    tmp_path: Path, zeroconf: AsyncZeroconf
) -> None:
    config = tmp_path / "conf" / "config.json"
    async with Ap2Receiver(features=NO_PTP_FEATURES, status_flags=PIN_REQUIRED) as receiver:
        device = receiver.emulator.device
        show_fixed_pin(device)
        await advertise(zeroconf, receiver.port)
        result = await run_pair(
            config, NAME, "--pin", FIXED_PIN, "--interface", HOST, "--timeout", "10"
        )
        assert result.code == 0, result.stderr
        credentials_text = stored(config)["airplay_credentials"]
        assert isinstance(credentials_text, str)
        credentials = HapCredentials.parse(credentials_text)
        assert credentials.accessory_ltpk == device.public_key
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert f"credentials stored in {config}" in result.stdout
        assert "now shows a PIN" in result.stdout
        assert_no_secret(result, credentials_text, credentials.seed.hex(), FIXED_PIN)
        dacp_id = json.loads((config.parent / "identity.json").read_text())["dacp_id"]
        assert device.paired[dacp_id.encode()] == credentials.public_key

        # the provider's streamer uses the stored credentials for pair-verify
        _, start_ntp = ntp_in(1.0)
        extra = ["--dacp_id", dacp_id, "--auth", credentials_text]
        stream = await Cliap2.start(
            address=HOST, port=receiver.port, ntpstart=start_ntp, extra=extra
        )
        await stream.feed(bytes(44100 * 4 // 2))
        assert await stream.finish() == 0, stream.text()
        assert stream.status("connected")[0]["pairing"] == "verify"
        assert not any(
            r.path == "/pair-setup" for c in receiver.emulator.connections[1:] for r in c.requests
        )


async def test_pair_legacy_by_address_with_the_pin_typed_in(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    async with Ap2Emulator() as emulator:
        result = await run_pair(
            config,
            PLAYER_ID,
            "--address",
            HOST,
            "--port",
            str(emulator.port),
            "--protocol",
            "raop",
            stdin_after=("PIN: ", emulator),
        )
        assert result.code == 0, result.stderr
        credentials_text = stored(config)["raop_credentials"]
        assert isinstance(credentials_text, str)
        credentials = LegacyCredentials.parse(credentials_text)
        assert credentials.user in emulator.device.legacy.paired
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert emulator.displayed_pin is not None
        assert_no_secret(result, credentials_text, credentials.secret.hex(), emulator.displayed_pin)


async def test_wrong_pin_fails_and_stores_nothing(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    async with Ap2Emulator(expect_errors=["/pair-setup: HAP error authentication"]) as emulator:
        show_fixed_pin(emulator.device)
        wrong = "1234"
        result = await run_pair(
            config, PLAYER_ID, "--address", HOST, "--port", str(emulator.port), "--pin", wrong
        )
    assert result.code == 1
    assert "pairing failed: the device refused the PIN" in result.stderr
    assert not config.exists()
    assert emulator.device.paired == {}


async def test_backoff_is_reported_with_its_delay(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    backoff = ["/pair-setup: HAP error backoff"]
    async with Ap2Emulator(backoff=True, retry_delay=90, expect_errors=backoff) as emulator:
        result = await run_pair(
            config, PLAYER_ID, "--address", HOST, "--port", str(emulator.port), "--pin", "0000"
        )
    assert result.code == 1
    assert "try again in 90 s" in result.stderr


async def test_usage_errors_and_unknown_receiver(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    bad_pin = await run_pair(config, PLAYER_ID, "--address", HOST, "--port", "7000", "--pin", "12")
    assert bad_pin.code == 2
    assert "4 digits" in bad_pin.stderr
    no_port = await run_pair(config, PLAYER_ID, "--address", HOST)
    assert (no_port.code, "--address needs --port" in no_port.stderr) == (2, True)
    missing = await run_pair(
        config, "Nowhere", "--interface", HOST, "--timeout", "0.5", "--pin", "1234"
    )
    assert missing.code == 1
    assert "no AirPlay receiver 'Nowhere' found within 0.5 s on 127.0.0.1" in missing.stderr
    assert not config.exists()


async def test_a_receiver_that_needs_no_pairing_is_told_once(
    tmp_path: Path, zeroconf: AsyncZeroconf
) -> None:
    config = tmp_path / "config.json"
    async with Ap2Receiver(features=NO_PTP_FEATURES) as receiver:
        await advertise(zeroconf, receiver.port, flags=0x4)
        result = await run_pair(config, NAME, "--pin", "1234", "--interface", HOST)
        assert result.code == 0, result.stderr
        assert result.stdout.count("needs no pairing") == 1
        assert result.stderr == ""
        assert receiver.emulator.connections == []  # nothing was attempted
    assert not config.exists()


async def test_a_protocol_the_receiver_does_not_offer_is_refused(
    tmp_path: Path, zeroconf: AsyncZeroconf
) -> None:
    config = tmp_path / "config.json"
    async with Ap2Receiver(features=NO_PTP_FEATURES, status_flags=PIN_REQUIRED) as receiver:
        await advertise(zeroconf, receiver.port)  # an _airplay service only: no RAOP
        result = await run_pair(
            config, NAME, "--protocol", "raop", "--pin", "1234", "--interface", HOST
        )
        assert result.code == 2
        assert "does not offer RAOP" in result.stderr
        assert receiver.emulator.connections == []
    assert not config.exists()
