"""Stand-in for music_assistant.mass.MusicAssistant: the parts providers reach."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from music_assistant.controllers.cache import CacheController
from music_assistant.controllers.config import ConfigController
from music_assistant.controllers.players.controller import PlayerController
from music_assistant.controllers.streams.streams_controller import StreamsController

if TYPE_CHECKING:
    from music_assistant_models.enums import ProviderType
    from zeroconf.asyncio import AsyncZeroconf

    from music_assistant.models.provider import Provider

_R = TypeVar("_R")


class MusicAssistant:
    """The server object handed to `setup()`."""

    __slots__ = (
        "_providers",
        "_tasks",
        "aiozc",
        "cache",
        "config",
        "loop",
        "loop_thread_id",
        "players",
        "streams",
        "unloaded",
    )

    def __init__(self, aiozc: AsyncZeroconf, server_id: str) -> None:
        """Controllers, zeroconf and a server id; must be created inside the event loop."""
        self.loop = asyncio.get_running_loop()
        self.loop_thread_id = threading.get_ident()
        self.aiozc = aiozc
        self.cache = CacheController(self)
        self.config = ConfigController(self)
        self.config.set("server_id", server_id)
        self.players = PlayerController(self)
        self.streams = StreamsController(self)
        self._providers: dict[str, Provider] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.unloaded: list[tuple[str, str | None]] = []

    @property
    def server_id(self) -> str:
        """Persistent id of this server."""
        return str(self.config.get("server_id", ""))

    @property
    def closing(self) -> bool:
        """Never closing in tests."""
        return False

    def create_task(
        self,
        target: Callable[..., Coroutine[Any, Any, _R]] | Awaitable[_R],
        *args: Any,
        task_id: str | None = None,
        abort_existing: bool = False,
        eager_start: bool = True,
        **kwargs: Any,
    ) -> asyncio.Task[_R]:
        """Run a coroutine (function) as a tracked task."""
        coro = target(*args, **kwargs) if callable(target) else target
        task: asyncio.Task[_R] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def call_later(
        self,
        delay: float,
        target: Coroutine[Any, Any, _R] | Awaitable[_R] | Callable[..., _R],
        *args: Any,
        task_id: str | None = None,
        **kwargs: Any,
    ) -> asyncio.TimerHandle:
        """Run a callable or awaitable after `delay` seconds."""

        def run() -> None:
            if asyncio.iscoroutine(target) or isinstance(target, Awaitable):
                self.create_task(target)
                return
            result = target(*args, **kwargs)
            if asyncio.iscoroutine(result):
                self.create_task(result)

        return self.loop.call_later(delay, run)

    def verify_event_loop_thread(self, what: str) -> None:
        """Raise when called off the loop thread."""
        if threading.get_ident() != self.loop_thread_id:
            raise RuntimeError(f"{what} may only be called from the event loop")

    def get_provider_instances(
        self,
        domain: str,
        return_unavailable: bool = False,
        provider_type: ProviderType | None = None,
    ) -> list[Provider]:
        """Loaded providers of a domain."""
        return [p for p in self._providers.values() if p.domain == domain]

    def add_provider(self, provider: Provider) -> None:
        """Stand-in helper (the server does this in its own loader)."""
        self._providers[provider.instance_id] = provider

    async def run_provider_discovery(self, instance_id: str) -> None:
        """No cached mDNS records in the stand-in."""

    async def unload_provider(self, instance_id: str, is_removed: bool = False) -> None:
        """Unregister the provider's players, then unload it (server order)."""
        provider = self._providers.pop(instance_id, None)
        if provider is None:
            return
        for player in list(
            self.players.all_players(
                provider_filter=instance_id, return_protocol_players=True, return_disabled=True
            )
        ):
            await self.players.unregister(player.player_id, permanent=is_removed)
        await provider.unload(is_removed)
        self.unloaded.append((instance_id, None))

    async def wait_tasks(self) -> None:
        """Stand-in helper: wait for tracked tasks."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
