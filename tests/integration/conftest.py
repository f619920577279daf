"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from zeroconf.asyncio import AsyncZeroconf

LOOPBACK = "127.0.0.1"


@pytest.fixture
async def zeroconf() -> AsyncIterator[AsyncZeroconf]:
    """An mDNS responder bound to loopback only; what a test registers is withdrawn after it."""
    instance = AsyncZeroconf(interfaces=[LOOPBACK])
    try:
        yield instance
    finally:
        await instance.async_unregister_all_services()
        await instance.async_close()
