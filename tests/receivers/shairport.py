"""pytest fixtures: one receiver lab per test session, shairport-sync receivers per test.

``start_shairport(prefix, password=..., ignore_volume=..., metadata=...)`` starts a receiver with
a unique name (``<prefix>-<6 hex>``) in the session's lab and stops it after the test; its log
tail is printed at teardown (pytest shows it when the test fails).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from airplay_provider.host.receivers import LocalReceiver, ReceiverLab, ReceiverSpec

StartShairport = Callable[..., Awaitable[LocalReceiver]]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def receiver_lab() -> AsyncIterator[ReceiverLab]:
    """Private D-Bus + loopback-only avahi, shared by the whole session."""
    async with ReceiverLab() as lab:
        yield lab


@pytest.fixture
async def start_shairport(receiver_lab: ReceiverLab) -> AsyncIterator[StartShairport]:
    """Factory: start shairport-sync receivers that are stopped after the test."""
    started: list[LocalReceiver] = []

    async def start(
        prefix: str = "peer",
        *,
        password: str | None = None,
        ignore_volume: bool = True,
        metadata: bool = False,
    ) -> LocalReceiver:
        spec = ReceiverSpec(
            name=f"{prefix}-{secrets.token_hex(3)}",
            password=password,
            ignore_volume=ignore_volume,
            metadata=metadata,
        )
        receiver = await receiver_lab.start_receiver(spec)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        print(f"--- log tail of {receiver.name} (port {receiver.port}) ---")
        print("\n".join(receiver.log_text().splitlines()[-40:]))
        await receiver_lab.stop_receiver(receiver)


@pytest.fixture
async def shairport_receiver(start_shairport: StartShairport) -> LocalReceiver:
    """One shairport-sync receiver (no password, volume ignored)."""
    return await start_shairport()
