"""Asyncio TCP server around the AirPlay 2 emulator core (loopback only).

Strict by default: leaving ``async with Ap2Emulator(...)`` cleanly fails the test if the device
recorded a refusal or violation the test did not declare (``expect_errors=``, `expect_error`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any

from tests.receivers.ap2_emulator_core import AccessoryConnection, AccessoryDevice
from tests.receivers.strict import ErrorLog

READ_TIMEOUT = 30.0


class Ap2Emulator:
    """A strict AirPlay 2 receiver listening on 127.0.0.1; use as an async context manager."""

    def __init__(
        self, host: str = "127.0.0.1", *, expect_errors: Iterable[str] = (), **device_options: Any
    ) -> None:
        self.host = host
        self.device = AccessoryDevice(**device_options)
        self.device.errors.expect(*expect_errors)
        self.port = 0
        self.connections: list[AccessoryConnection] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        #: Awaited before each RTSP request is handled (`Ap2Receiver`: read the audio datagrams
        #: already queued, tests/receivers/queued.py).
        self.before_request: Callable[[], Awaitable[None]] | None = None

    @property
    def errors(self) -> ErrorLog:
        """Every refusal and violation the device recorded (all connections, its session)."""
        return self.device.errors

    def expect_error(self, *patterns: str) -> None:
        """Declare errors the test provokes on purpose (regular expressions, searched)."""
        self.device.errors.expect(*patterns)

    @property
    def displayed_pin(self) -> str | None:
        """The PIN shown after the last /pair-pin-start."""
        return self.device.displayed_pin

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()  # the handler then reads EOF and ends by itself
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=5.0)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Ap2Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        if exc_type is None:
            self.device.errors.check(f"AirPlay 2 emulator {self.device.name!r}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        connection = AccessoryConnection(self.device)
        self.connections.append(connection)
        try:
            while not connection.closed:
                data = await asyncio.wait_for(reader.read(65536), READ_TIMEOUT)
                if not data:
                    break
                if self.before_request is not None:
                    await self.before_request()  # audio sent before this request comes first
                reply = connection.feed(data)
                if reply:
                    writer.write(reply)
                    await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 2.0)
            self._tasks.discard(task)
            self._writers.discard(writer)
