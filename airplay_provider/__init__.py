"""AirPlay output provider: RAOP and AirPlay 2 streaming, multi-room, DACP and pairing.

Music Assistant entry points: `setup()` and `get_config_entries()`. Importing this package is
cheap (no zeroconf, no models); the heavy modules load when these functions run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from music_assistant_models.config_entries import ConfigEntry, ConfigValueType

    from airplay_provider.provider import AirPlayProvider

#: Provider features in Music Assistant terms (`ProviderFeature` values).
SUPPORTED_FEATURES = frozenset({"sync_players"})


async def setup(mass: Any, manifest: Any, config: Any) -> AirPlayProvider:
    """Create the provider for a host that implements `host_api.ProviderHost`.

    Music Assistant's `mass` object is wrapped by an adapter that maps each `ProviderHost` call
    onto its PlayerProvider API (table in `airplay_provider.host_api`).
    """
    from airplay_provider.host_api import ProviderHost  # noqa: PLC0415
    from airplay_provider.provider import AirPlayProvider  # noqa: PLC0415

    if not isinstance(mass, ProviderHost):
        raise TypeError(
            "airplay_provider.setup() needs a host implementing "
            "airplay_provider.host_api.ProviderHost (an adapter around Music Assistant's "
            f"server object); got {type(mass).__name__}"
        )
    # Music Assistant's core browses mDNS itself and calls on_mdns_service_state_change.
    return AirPlayProvider(mass, browse=False)


async def get_config_entries(
    mass: Any = None,
    instance_id: str | None = None,
    action: str | None = None,
    values: dict[str, ConfigValueType] | None = None,
) -> tuple[ConfigEntry, ...]:
    """Provider-level config entries (late join, mDNS interfaces)."""
    from airplay_provider.config import provider_config_entries  # noqa: PLC0415

    return tuple(provider_config_entries())
