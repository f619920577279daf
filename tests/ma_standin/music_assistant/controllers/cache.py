"""Stand-in for music_assistant.controllers.cache.CacheController (in memory)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from music_assistant.mass import MusicAssistant

DEFAULT_CACHE_EXPIRATION = 86400 * 30


class CacheController:
    """Key/value cache grouped by provider and category."""

    __slots__ = ("_data", "mass")

    def __init__(self, mass: MusicAssistant) -> None:
        """Empty cache."""
        self.mass = mass
        self._data: dict[tuple[str, str, int], Any] = {}

    async def get(
        self,
        key: str,
        provider: str = "default",
        category: int = 0,
        checksum: str | int | None = None,
        default: Any = None,
        allow_bypass: bool = True,
    ) -> Any:
        """Cached value or `default`."""
        return self._data.get((provider, key, category), default)

    async def set(
        self,
        key: str,
        data: Any,
        expiration: int = DEFAULT_CACHE_EXPIRATION,
        provider: str = "default",
        category: int = 0,
        checksum: str | None = None,
        persistent: bool = False,
    ) -> None:
        """Store a value."""
        self._data[(provider, key, category)] = data
