"""Builds what Music Assistant hands `setup()`: the server object, manifest and config."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from music_assistant.mass import MusicAssistant
from music_assistant_models.config_entries import ProviderConfig
from music_assistant_models.provider import ProviderManifest
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

import airplay_provider
from airplay_provider.mass.provider import MassAirPlayProvider

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
RAOP = "_raop._tcp.local."
INSTANCE_ID = "airplay_provider--test"


def manifest() -> ProviderManifest:
    """The manifest exactly as shipped."""
    data = json.loads((ROOT / "airplay_provider" / "manifest.json").read_text())
    return ProviderManifest.from_dict(data)


async def provider_config(**values: object) -> ProviderConfig:
    """A provider config parsed from our own entries, as Music Assistant builds it."""
    entries = await airplay_provider.get_config_entries(None)
    raw = {
        "type": "player",
        "domain": "airplay_provider",
        "instance_id": INSTANCE_ID,
        "values": {"mdns_interfaces": HOST, **values},
    }
    config = ProviderConfig.parse(entries, raw)
    assert isinstance(config, ProviderConfig)
    return config


@asynccontextmanager
async def loaded_provider(**values: object) -> AsyncIterator[MassAirPlayProvider]:
    """setup → handle_async_init → loaded_in_mass, unloaded (is_removed) at the end."""
    aiozc = AsyncZeroconf(interfaces=[HOST])
    # A fresh server id each time: its DACP service name is announced on loopback, which other
    # test runs on this machine share (a fixed id made parallel runs collide).
    mass = MusicAssistant(aiozc, uuid.uuid4().hex)
    try:
        provider = await airplay_provider.setup(mass, manifest(), await provider_config(**values))
        assert isinstance(provider, MassAirPlayProvider)
        await provider.handle_async_init()
        mass.add_provider(provider)
        provider.available = True
        await provider.loaded_in_mass()
        try:
            yield provider
        finally:
            await mass.unload_provider(provider.instance_id, is_removed=True)
            await mass.wait_tasks()
    finally:
        await aiozc.async_close()


def raop_service(mac: str, name: str, port: int, **txt: str) -> AsyncServiceInfo:
    """A `_raop._tcp` record for a receiver on loopback (plain RAOP, PCM)."""
    properties = {"am": "ShairportSync", "et": "0", "md": "0,1,2", "cn": "0,1", "tp": "UDP"}
    properties |= txt
    return AsyncServiceInfo(
        RAOP,
        f"{mac}@{name}.{RAOP}",
        port=port,
        properties=properties,
        server=f"{name.lower()}.local.",
        addresses=[socket.inet_aton(HOST)],
    )
