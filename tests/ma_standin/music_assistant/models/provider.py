"""Stand-in for music_assistant.models.provider (2.8-dev signatures)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, final

from music_assistant.constants import CONF_LOG_LEVEL, MASS_LOGGER_NAME
from music_assistant.models.strict import check_overrides

if TYPE_CHECKING:
    from music_assistant_models.config_entries import ProviderConfig
    from music_assistant_models.enums import ProviderFeature, ProviderStage, ProviderType
    from music_assistant_models.provider import ProviderManifest
    from zeroconf import ServiceStateChange
    from zeroconf.asyncio import AsyncServiceInfo

    from music_assistant.mass import MusicAssistant


class Provider:
    """Base of every provider instance."""

    mass: MusicAssistant
    manifest: ProviderManifest
    config: ProviderConfig

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Stand-in strictness: overrides keep the base signatures; final stays final."""
        super().__init_subclass__(**kwargs)
        for base in cls.__mro__[1:]:
            if base.__module__.startswith("music_assistant."):
                check_overrides(base, cls)

    def __init__(
        self,
        mass: MusicAssistant,
        manifest: ProviderManifest,
        config: ProviderConfig,
        supported_features: set[ProviderFeature] | None = None,
    ) -> None:
        """Keep the server, manifest and config; not available until loaded."""
        self.mass = mass
        self.manifest = manifest
        self.config = config
        self._supported_features = supported_features or set()
        self._set_log_level_from_config(config)
        self.cache = mass.cache
        self.available = False

    @property
    def supported_features(self) -> set[ProviderFeature]:
        """Features given at construction."""
        return self._supported_features

    async def handle_async_init(self) -> None:
        """Async set-up (overridden)."""

    async def loaded_in_mass(self) -> None:
        """After the provider was loaded."""

    async def unload(self, is_removed: bool = False) -> None:
        """Provider unload (overridden)."""

    async def update_config(self, config: ProviderConfig, changed_keys: set[str]) -> None:
        """Stored config changed (the real server reloads the provider)."""
        self.config = config

    async def on_mdns_service_state_change(
        self, name: str, state_change: ServiceStateChange, info: AsyncServiceInfo | None
    ) -> None:
        """mDNS callback (overridden)."""

    @property
    @final
    def type(self) -> ProviderType:
        """Manifest type."""
        return self.manifest.type

    @property
    @final
    def domain(self) -> str:
        """Manifest domain."""
        return self.manifest.domain

    @property
    @final
    def instance_id(self) -> str:
        """Config instance id."""
        return self.config.instance_id

    @property
    @final
    def name(self) -> str:
        """Configured name, else the manifest's."""
        return self.config.name or self.default_name

    @property
    @final
    def default_name(self) -> str:
        """The manifest name (single instance)."""
        return self.manifest.name

    @property
    def instance_name_postfix(self) -> str | None:
        """No postfix."""
        return None

    @property
    @final
    def stage(self) -> ProviderStage:
        """Manifest stage."""
        return self.manifest.stage

    def unload_with_error(self, error: str) -> None:
        """Schedule an unload with an error."""
        self.mass.call_later(1, self.mass.unload_provider, self.instance_id, error)

    def to_dict(self) -> dict[str, Any]:
        """A few fields, as the API would show."""
        return {"domain": self.domain, "instance_id": self.instance_id, "available": self.available}

    def supports_feature(self, feature: ProviderFeature) -> bool:
        """Feature test."""
        return feature in self.supported_features

    def check_feature(self, feature: ProviderFeature) -> None:
        """Raise when the feature is missing."""
        if not self.supports_feature(feature):
            raise ValueError(f"{self.name} lacks {feature}")

    def _update_config_value(self, key: str, value: Any, encrypted: bool = False) -> None:
        """Store a provider value (not used by our adapter)."""
        raise NotImplementedError

    def _set_log_level_from_config(self, config: ProviderConfig) -> None:
        """Logger named after the domain, level from the config's log_level."""
        self.logger = logging.getLogger(MASS_LOGGER_NAME).getChild(self.domain)
        level = str(config.get_value(CONF_LOG_LEVEL) or "GLOBAL")
        if level != "GLOBAL":
            self.logger.setLevel(level)
