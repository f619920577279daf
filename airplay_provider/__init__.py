"""AirPlay output provider: RAOP and AirPlay 2 streaming, multi-room, DACP and pairing.

Music Assistant entry points: `setup()` and `get_config_entries()`. Importing this package is
cheap (no zeroconf, no models); the heavy modules load when these functions run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from music_assistant_models.config_entries import ConfigEntry, ConfigValueType

#: Provider features in Music Assistant terms (`ProviderFeature` values).
SUPPORTED_FEATURES = frozenset({"sync_players"})


async def setup(mass: Any, manifest: Any, config: Any) -> Any:
    """Create the provider.

    Inside Music Assistant `mass` is the server object: the result is a Music Assistant
    `PlayerProvider` (`airplay_provider.mass.provider.MassAirPlayProvider`). A host that
    implements `host_api.ProviderHost` itself (the standalone command, tests) gets the plain
    `AirPlayProvider`.
    """
    from airplay_provider.host_api import ProviderHost  # noqa: PLC0415

    if isinstance(mass, ProviderHost):
        from airplay_provider.provider import AirPlayProvider  # noqa: PLC0415

        return AirPlayProvider(mass, browse=False)
    needs = (
        "airplay_provider.setup() needs Music Assistant's server object or a host "
        f"implementing airplay_provider.host_api.ProviderHost; got {type(mass).__name__}"
    )
    try:
        from music_assistant.mass import MusicAssistant  # noqa: PLC0415

        from airplay_provider.mass.provider import MassAirPlayProvider  # noqa: PLC0415
    except ImportError as err:
        raise TypeError(f"{needs} (music_assistant is not importable: {err})") from err
    if not isinstance(mass, MusicAssistant):
        raise TypeError(needs)
    return MassAirPlayProvider(mass, manifest, config)


async def get_config_entries(
    mass: Any = None,
    instance_id: str | None = None,
    action: str | None = None,
    values: dict[str, ConfigValueType] | None = None,
) -> tuple[ConfigEntry, ...]:
    """Provider-level config entries (late join, mDNS interfaces)."""
    from airplay_provider.config import provider_config_entries  # noqa: PLC0415

    return tuple(provider_config_entries())
