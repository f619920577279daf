"""Discovery against real mDNS on loopback only: zeroconf-registered services and a real
shairport-sync announced by avahi (receiver lab)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import socket
import stat
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from airplay_provider.discovery import AirPlayDiscovery
from airplay_provider.host.receivers import ReceiverLab
from airplay_provider.protocol.txt import DeviceRecord
from tests.receivers.shairport import StartShairport

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = ["127.0.0.1"]
EVENT_TIMEOUT = 15.0


class Recorder:
    """Discovery listener that queues (kind, device) events."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[tuple[str, DeviceRecord]] = asyncio.Queue()

    async def device_added(self, device: DeviceRecord) -> None:
        self.events.put_nowait(("added", device))

    async def device_updated(self, device: DeviceRecord) -> None:
        self.events.put_nowait(("updated", device))

    async def device_removed(self, device: DeviceRecord) -> None:
        self.events.put_nowait(("removed", device))

    async def wait_for(
        self, player_id: str, kinds: set[str], check: Callable[[DeviceRecord], bool]
    ) -> DeviceRecord:
        """Next event of `player_id` with a kind in `kinds` whose device passes `check`."""
        async with asyncio.timeout(EVENT_TIMEOUT):
            while True:
                kind, device = await self.events.get()
                if device.player_id == player_id and kind in kinds and check(device):
                    return device


def fake_services(mac: str, name: str, address: str) -> tuple[AsyncServiceInfo, AsyncServiceInfo]:
    colon_mac = ":".join(mac[i : i + 2] for i in range(0, 12, 2))
    addresses = [socket.inet_aton(address)]
    raop = AsyncServiceInfo(
        "_raop._tcp.local.",
        f"{mac}@{name}._raop._tcp.local.",
        port=5123,
        properties={"am": "AudioAccessory5,1", "sf": "0x4", "ft": "0x4A7FCA00,0xBC354BD0"},
        server=f"{name}.local.",
        addresses=addresses,
    )
    airplay = AsyncServiceInfo(
        "_airplay._tcp.local.",
        f"{name}._airplay._tcp.local.",
        port=7123,
        properties={
            "deviceid": colon_mac,
            "features": "0x4A7FCA00,0xBC354BD0",
            "flags": "0x200",
            "model": "AudioAccessory5,1",
        },
        server=f"{name}.local.",
        addresses=addresses,
    )
    return raop, airplay


@pytest.fixture
async def publisher() -> AsyncIterator[AsyncZeroconf]:
    zeroconf = AsyncZeroconf(interfaces=LOOPBACK)
    try:
        yield zeroconf
    finally:
        await zeroconf.async_unregister_all_services()
        await zeroconf.async_close()


def unique_device() -> tuple[str, str]:
    mac = "02" + secrets.token_hex(5).upper()  # locally administered: never a real vendor
    return mac, f"Test Speaker {mac[-4:]}"


async def test_add_merge_address_change_and_removal(publisher: AsyncZeroconf) -> None:
    mac, name = unique_device()
    player_id = "ap" + mac.lower()
    raop, airplay = fake_services(mac, name, "127.0.0.2")
    recorder = Recorder()
    async with AirPlayDiscovery(recorder, interfaces=LOOPBACK) as discovery:
        await publisher.async_register_service(raop)
        await publisher.async_register_service(airplay)
        device = await recorder.wait_for(
            player_id,
            {"added", "updated"},
            lambda d: d.raop_port == 5123 and d.airplay_port == 7123,
        )
        assert device.name == name
        assert device.address == "127.0.0.2"
        assert device.model == "HomePod Mini"
        assert device.pairing_required
        assert device.supports_airplay2
        assert device.hostname == f"{name}.local."
        assert discovery.devices[player_id] == device

        for info in (raop, airplay):
            info.addresses = [socket.inet_aton("127.0.0.3")]
            await publisher.async_update_service(info)
        # The replaced address can stay valid in mDNS caches for a while (cache-flush only
        # expires records older than 1 s); zeroconf lists the newest first and so do we.
        moved = await recorder.wait_for(player_id, {"updated"}, lambda d: d.address != "127.0.0.2")
        assert moved.address == "127.0.0.3"
        assert moved.addresses[0] == "127.0.0.3"

        await publisher.async_unregister_service(raop)
        only_airplay = await recorder.wait_for(player_id, {"updated"}, lambda d: d.raop is None)
        assert only_airplay.airplay_port == 7123
        await publisher.async_unregister_service(airplay)
        gone = await recorder.wait_for(player_id, {"removed"}, lambda d: True)
        assert gone.name == name
        assert player_id not in discovery.devices


async def test_discover_command_prints_json(publisher: AsyncZeroconf, tmp_path: Path) -> None:
    mac, name = unique_device()
    player_id = "ap" + mac.lower()
    raop, airplay = fake_services(mac, name, "127.0.0.2")
    await publisher.async_register_service(raop)
    await publisher.async_register_service(airplay)
    config_file = tmp_path / "config.json"
    env = {**os.environ, "AIRPLAY_PROVIDER_CONFIG": str(config_file)}
    net = ("--interface", "127.0.0.1", "--timeout", "3")
    code, stdout, stderr = await run_cli("discover", *net, "--json", env=env)
    assert code == 0, stderr
    found = {entry["player_id"]: entry for entry in json.loads(stdout)}
    entry = found[player_id]
    assert entry["name"] == name
    assert entry["protocol"] == "airplay2"  # AUTO on an AirPlay 2 device: what `play` uses
    assert entry["airplay2_capable"] is True
    assert entry["model"] == "HomePod Mini"
    assert entry["address"] == "127.0.0.2"
    assert (entry["raop_port"], entry["airplay_port"]) == (5123, 7123)
    assert entry["pairing_required"] is True
    # the user's per-player protocol setting is what discover shows, as play honours it
    code, _, stderr = await run_cli("config", player_id, "airplay_protocol=raop", env=env)
    assert code == 0, stderr
    code, stdout, stderr = await run_cli("discover", *net, env=env)
    assert code == 0, stderr
    (row,) = [line for line in stdout.splitlines() if line.startswith(name)]
    assert row[len(name) :].split()[:2] == ["RAOP", "(AP2-capable)"]


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "airplay_provider.host.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(30):
            stdout, stderr = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(), stderr.decode()


async def test_config_command_validates_and_persists(
    publisher: AsyncZeroconf, tmp_path: Path
) -> None:
    mac, name = unique_device()
    player_id = "ap" + mac.lower()
    for info in fake_services(mac, name, "127.0.0.2"):
        await publisher.async_register_service(info)
    config_file = tmp_path / "config.json"
    env = {**os.environ, "AIRPLAY_PROVIDER_CONFIG": str(config_file)}
    net = ("--interface", "127.0.0.1", "--timeout", "3")

    code, _, err = await run_cli("config", name, "sync_adjust=900", *net, env=env)
    assert code == 2
    assert "sync_adjust must be between -500 and 500 ms, got 900" in err
    assert not config_file.exists()

    code, out, err = await run_cli("config", name.lower(), "sync_adjust=-30", *net, env=env)
    assert code == 0, err
    assert str(config_file) in out
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    stored = json.loads(config_file.read_text())["players"][player_id]
    assert stored == {"name": name, "values": {"sync_adjust": -30}}

    # stored players are found without the network (no --interface needed)
    code, out, _ = await run_cli("config", player_id, env=env)
    assert code == 0
    assert re.search(r"^sync_adjust\s+-30\s+0\s", out, re.MULTILINE)

    code, _, err = await run_cli("config", player_id, "ap2_stream_type=udp", env=env)
    assert code == 2
    assert "ap2_stream_type must be one of auto (Automatically select)" in err
    code, _, err = await run_cli("config", player_id, "ap2_stream_type=buffered", env=env)
    assert code == 0, err
    stored = json.loads(config_file.read_text())["players"][player_id]["values"]
    assert stored == {"sync_adjust": -30, "ap2_stream_type": "buffered"}

    look_briefly = ("--interface", "127.0.0.1", "--timeout", "1")
    code, _, err = await run_cli("config", "No Such Speaker 4242", *look_briefly, env=env)
    assert code == 1
    assert "No AirPlay receiver named 'No Such Speaker 4242' found" in err


@pytest.mark.receiver
async def test_real_shairport_sync_is_discovered_and_removed(
    receiver_lab: ReceiverLab, start_shairport: StartShairport
) -> None:
    recorder = Recorder()
    async with AirPlayDiscovery(recorder, interfaces=LOOPBACK):
        receiver = await start_shairport("disc")
        browsed = await receiver_lab.wait_advertised(receiver)
        player_id = "ap" + browsed.name.split("@", 1)[0].lower()
        device = await recorder.wait_for(player_id, {"added", "updated"}, lambda d: True)
        assert device.name == receiver.name
        assert device.raop_port == receiver.port
        assert device.model_id == "ShairportSync"
        assert device.address == "127.0.0.1"
        assert not device.pairing_required
        assert device.raop is not None
        assert device.raop.txt["et"] == "0,1"
        await receiver_lab.stop_receiver(receiver)
        gone = await recorder.wait_for(player_id, {"removed"}, lambda d: True)
        assert gone.raop_port == receiver.port
