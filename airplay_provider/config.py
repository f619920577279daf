"""Config keys, defaults and `ConfigEntry` definitions; validation of user values.

The same entries serve Music Assistant's UI and the standalone `airplay-provider config`
command, so a value accepted in one place is accepted in the other (command-line text is
turned into values by `config_text`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from music_assistant_models.config_entries import (
    ConfigEntry,
    ConfigValueOption,
    ConfigValueType,
)
from music_assistant_models.enums import ConfigEntryType

from airplay_provider.protocol.ap2_buffered import StreamChoice
from airplay_provider.protocol.errors import AirplayError
from airplay_provider.protocol.txt import DeviceRecord, ProtocolPreference

# Provider level
CONF_ENABLE_LATE_JOIN: Final = "enable_late_join"
CONF_MDNS_INTERFACES: Final = "mdns_interfaces"
# Player level
CONF_AIRPLAY_PROTOCOL: Final = "airplay_protocol"
CONF_ENCRYPTION: Final = "encryption"
CONF_ALAC_ENCODE: Final = "alac_encode"
CONF_AP2_STREAM_TYPE: Final = "ap2_stream_type"
CONF_HIRES_AUDIO: Final = "hires_audio"
CONF_PASSWORD: Final = "password"  # noqa: S105  (a config key, not a secret)
CONF_SYNC_ADJUST: Final = "sync_adjust"
CONF_OUTPUT_BUFFER: Final = "output_buffer_ms"
CONF_AIRPLAY_LATENCY: Final = "airplay_latency"
CONF_RAOP_CREDENTIALS: Final = "raop_credentials"
CONF_AIRPLAY_CREDENTIALS: Final = "airplay_credentials"
CONF_IGNORE_VOLUME: Final = "ignore_volume"
CONF_AIRPLAY2_TIMING: Final = "airplay2_timing"
CONF_BROKEN_ALERT: Final = "broken_airplay"
CONF_ENABLED: Final = "enabled"
# Pairing config actions (Music Assistant style: start → PIN → finish; reset)
CONF_PAIRING_INSTRUCTIONS: Final = "pairing_instructions"
CONF_ACTION_START_PAIRING: Final = "start_pairing"
CONF_PAIRING_PIN: Final = "pairing_pin"
CONF_ACTION_FINISH_PAIRING: Final = "finish_pairing"
CONF_PAIRING_STATUS: Final = "pairing_status"
CONF_ACTION_RESET_PAIRING: Final = "reset_pairing"
CONF_PAIRING_ERROR: Final = "pairing_error"
PAIRING_ACTIONS: Final = frozenset(
    {CONF_ACTION_START_PAIRING, CONF_ACTION_FINISH_PAIRING, CONF_ACTION_RESET_PAIRING}
)

CATEGORY: Final = "protocol_generic"
SYNC_ADJUST_RANGE: Final = (-500, 500)
OUTPUT_BUFFER_RANGE: Final = (500, 5000)
AIRPLAY_LATENCY_RANGE: Final = (250, 2000)

_STREAM_CHOICES: Final[dict[str, StreamChoice]] = {
    "auto": "auto",
    "realtime": "realtime",
    "buffered": "buffered",
}


class ConfigValidationError(AirplayError, ValueError):
    """A user value that does not fit its ConfigEntry; `str()` is the message for the user."""

    def __init__(self, key: str, message: str) -> None:
        """Remember the offending key."""
        super().__init__(message)
        self.key = key


def provider_config_entries() -> list[ConfigEntry]:
    """Provider-level entries: late join, mDNS interfaces."""
    return [
        ConfigEntry(
            key=CONF_ENABLE_LATE_JOIN,
            type=ConfigEntryType.BOOLEAN,
            label="Allow late joining",
            default_value=True,
            description=(
                "Let a player join a running stream from the buffer instead of restarting the "
                "whole group. The joiner may take a few seconds to catch up."
            ),
            category=CATEGORY,
        ),
        ConfigEntry(
            key=CONF_MDNS_INTERFACES,
            type=ConfigEntryType.STRING,
            label="mDNS interfaces",
            default_value="",
            required=False,
            description=(
                "Comma-separated local IP addresses on which to discover receivers; "
                "empty means all interfaces."
            ),
            category=CATEGORY,
            advanced=True,
        ),
    ]


def player_config_entries(
    device: DeviceRecord | None = None, *, include_enabled: bool = False
) -> list[ConfigEntry]:
    """Per-player entries. A known-broken model gets an ALERT entry before the last one.

    `include_enabled` adds the `enabled` switch the standalone host needs (Music Assistant's
    core has its own).
    """
    entries = [
        ConfigEntry(
            key=CONF_RAOP_CREDENTIALS,
            type=ConfigEntryType.SECURE_STRING,
            label="RAOP credentials",
            required=False,
            hidden=True,
            category=CATEGORY,
        ),
        ConfigEntry(
            key=CONF_AIRPLAY_CREDENTIALS,
            type=ConfigEntryType.SECURE_STRING,
            label="AirPlay 2 credentials",
            required=False,
            hidden=True,
            category=CATEGORY,
        ),
        ConfigEntry(
            key=CONF_AIRPLAY_PROTOCOL,
            type=ConfigEntryType.INTEGER,
            label="AirPlay version",
            default_value=int(ProtocolPreference.AUTO),
            required=False,
            options=[
                ConfigValueOption("Automatically select", int(ProtocolPreference.AUTO)),
                ConfigValueOption("Prefer AirPlay 1 (RAOP)", int(ProtocolPreference.RAOP)),
                ConfigValueOption("Prefer AirPlay 2", int(ProtocolPreference.AIRPLAY2)),
            ],
            description="Which protocol to stream with (CLI words: auto, raop, airplay2).",
            category=CATEGORY,
        ),
        ConfigEntry(
            key=CONF_ENCRYPTION,
            type=ConfigEntryType.BOOLEAN,
            label="Enable encryption",
            default_value=True,
            description="Encrypt the audio stream (RAOP).",
            depends_on=CONF_AIRPLAY_PROTOCOL,
            depends_on_value_not=int(ProtocolPreference.AIRPLAY2),
            category=CATEGORY,
            advanced=True,
        ),
        ConfigEntry(
            key=CONF_ALAC_ENCODE,
            type=ConfigEntryType.BOOLEAN,
            label="Enable compression",
            default_value=False,
            description=(
                "Compress the audio with ALAC: lossless, about 40 % less bandwidth on Wi-Fi, but "
                "it costs about 6 % of a CPU core per player (off: uncompressed ALAC frames)."
            ),
            depends_on=CONF_AIRPLAY_PROTOCOL,
            depends_on_value_not=int(ProtocolPreference.AIRPLAY2),
            category=CATEGORY,
            advanced=True,
        ),
        ConfigEntry(
            key=CONF_AP2_STREAM_TYPE,
            type=ConfigEntryType.STRING,
            label="AirPlay 2 stream type",
            default_value="auto",
            options=[
                ConfigValueOption("Automatically select", "auto"),
                ConfigValueOption("Realtime (UDP)", "realtime"),
                ConfigValueOption("Buffered (TCP)", "buffered"),
            ],
            description=(
                "How AirPlay 2 audio is sent. Automatic: buffered when the receiver offers it "
                "and is not an Apple device, else realtime."
            ),
            depends_on=CONF_AIRPLAY_PROTOCOL,
            depends_on_value_not=int(ProtocolPreference.RAOP),
            category=CATEGORY,
            advanced=True,
        ),
        ConfigEntry(
            key=CONF_HIRES_AUDIO,
            type=ConfigEntryType.BOOLEAN,
            label="Hi-res audio (24-bit/48 kHz)",
            default_value=False,
            description=(
                "Stream 24-bit/48 kHz ALAC instead of 16-bit/44.1 kHz. Needs an AirPlay 2 "
                "receiver with buffered audio (other receivers, and groups with one, play "
                "16-bit/44.1 kHz, as the status says). Off by default: HomePods crackled over "
                "Wi-Fi with it in Music Assistant."
            ),
            depends_on=CONF_AIRPLAY_PROTOCOL,
            depends_on_value_not=int(ProtocolPreference.RAOP),
            category=CATEGORY,
            advanced=True,
        ),
        ConfigEntry(
            key=CONF_PASSWORD,
            type=ConfigEntryType.SECURE_STRING,
            label="Device password",
            required=False,
            description="Password of a receiver that asks for one (RAOP).",
            category=CATEGORY,
            advanced=True,
        ),
        ConfigEntry(
            key=CONF_SYNC_ADJUST,
            type=ConfigEntryType.INTEGER,
            label="Audio synchronization delay correction",
            default_value=0,
            range=SYNC_ADJUST_RANGE,
            description="Shift this player's start time, in milliseconds (−500..500).",
            category=CATEGORY,
            advanced=True,
            requires_reload=True,
        ),
        ConfigEntry(
            key=CONF_OUTPUT_BUFFER,
            type=ConfigEntryType.INTEGER,
            label="Output buffer (ms)",
            default_value=2000,
            range=OUTPUT_BUFFER_RANGE,
            description="Milliseconds the RAOP receiver buffers before playing.",
            category=CATEGORY,
            advanced=True,
        ),
        ConfigEntry(
            key=CONF_AIRPLAY_LATENCY,
            type=ConfigEntryType.INTEGER,
            label="Milliseconds of data to buffer",
            default_value=250,
            range=AIRPLAY_LATENCY_RANGE,
            description="Milliseconds of audio buffered for AirPlay 2 playback.",
            category=CATEGORY,
            advanced=True,
        ),
        ConfigEntry(
            key=CONF_AIRPLAY2_TIMING,
            type=ConfigEntryType.STRING,
            label="AirPlay 2 clock",
            default_value="auto",
            required=False,
            options=[
                ConfigValueOption("Automatic (PTP, NTP if the device never follows)", "auto"),
                ConfigValueOption("PTP only", "ptp"),
                ConfigValueOption("NTP only (devices that advertise PTP but stay silent)", "ntp"),
            ],
            description="Timing protocol of AirPlay 2 streams (CLI words: auto, ptp, ntp).",
            depends_on=CONF_AIRPLAY_PROTOCOL,
            depends_on_value_not=int(ProtocolPreference.RAOP),
            category=CATEGORY,
            advanced=True,
        ),
        ConfigEntry(
            key=CONF_IGNORE_VOLUME,
            type=ConfigEntryType.BOOLEAN,
            label="Ignore volume reports from the device",
            default_value=False,
            description="Do not follow volume changes made on the device itself.",
            category=CATEGORY,
            advanced=True,
        ),
    ]
    if include_enabled:
        entries.insert(
            0,
            ConfigEntry(
                key=CONF_ENABLED,
                type=ConfigEntryType.BOOLEAN,
                label="Enabled",
                default_value=enabled_by_default(device),
                category=CATEGORY,
            ),
        )
    if device is not None and device.is_broken:
        alert = ConfigEntry(
            key=CONF_BROKEN_ALERT,
            type=ConfigEntryType.ALERT,
            label=(
                f"{device.manufacturer} {device.model} is known not to play AirPlay audio "
                "correctly; this player is disabled by default."
            ),
            category=CATEGORY,
        )
        entries.insert(len(entries) - 1, alert)
    return entries


def enabled_by_default(device: DeviceRecord | None) -> bool:
    """Known-broken models start disabled."""
    return device is None or not device.is_broken


def _entries_by_key(entries: Iterable[ConfigEntry]) -> dict[str, ConfigEntry]:
    return {entry.key: entry for entry in entries}


def validate_value(entry: ConfigEntry, value: object) -> ConfigValueType:
    """Check one value against its entry (type, range, options). Returns the typed value."""
    key = entry.key
    if entry.type in (ConfigEntryType.LABEL, ConfigEntryType.ALERT, ConfigEntryType.ACTION):
        raise ConfigValidationError(key, f"{key} is not a setting that takes a value")
    if value is None:
        if entry.required and entry.default_value is not None:
            return entry.default_value
        return None
    if entry.type is ConfigEntryType.BOOLEAN:
        if not isinstance(value, bool):
            raise ConfigValidationError(key, f"{key} must be true or false, got {value!r}")
        return value
    if entry.type is ConfigEntryType.INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigValidationError(key, f"{key} must be a whole number, got {value!r}")
        _check_range(entry, value)
        _check_options(entry, value)
        return value
    if entry.type is ConfigEntryType.FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigValidationError(key, f"{key} must be a number, got {value!r}")
        _check_range(entry, value)
        return float(value)
    if not isinstance(value, str):
        raise ConfigValidationError(key, f"{key} must be text, got {value!r}")
    _check_options(entry, value)
    return value


def _check_range(entry: ConfigEntry, value: float) -> None:
    if entry.range is None:
        return
    low, high = entry.range
    if not low <= value <= high:
        unit = " ms" if entry.key in _MS_KEYS else ""
        raise ConfigValidationError(
            entry.key, f"{entry.key} must be between {low} and {high}{unit}, got {value}"
        )


_MS_KEYS = frozenset({CONF_SYNC_ADJUST, CONF_OUTPUT_BUFFER, CONF_AIRPLAY_LATENCY})


def _check_options(entry: ConfigEntry, value: ConfigValueType) -> None:
    if not entry.options:
        return
    allowed = [option.value for option in entry.options]
    if value not in allowed:
        choices = ", ".join(f"{option.value} ({option.title})" for option in entry.options)
        raise ConfigValidationError(entry.key, f"{entry.key} must be one of {choices}; got {value}")


def validate_values(
    entries: Sequence[ConfigEntry], values: Mapping[str, object]
) -> dict[str, ConfigValueType]:
    """Validate several values; unknown keys are refused with the list of known ones."""
    by_key = _entries_by_key(entries)
    result: dict[str, ConfigValueType] = {}
    for key, value in values.items():
        entry = by_key.get(key)
        if entry is None:
            known = ", ".join(sorted(k for k, e in by_key.items() if _is_setting(e)))
            raise ConfigValidationError(key, f"unknown setting {key!r}; known settings: {known}")
        result[key] = validate_value(entry, value)
    return result


def _is_setting(entry: ConfigEntry) -> bool:
    return entry.type not in (
        ConfigEntryType.LABEL,
        ConfigEntryType.ALERT,
        ConfigEntryType.ACTION,
        ConfigEntryType.DIVIDER,
    )


@dataclass(frozen=True)
class PlayerSettings:
    """A player's effective settings, typed."""

    protocol: ProtocolPreference = ProtocolPreference.AUTO
    encryption: bool = True
    alac_encode: bool = False  # compression costs ~6 % of a core per stream (README)
    ap2_stream_type: StreamChoice = "auto"  # cliap2 --stream-type
    hires_audio: bool = False  # 24-bit/48 kHz where the receiver (and its group) can take it
    password: str | None = None
    sync_adjust_ms: int = 0
    output_buffer_ms: int = 2000
    airplay_latency_ms: int = 250
    raop_credentials: str | None = None
    airplay_credentials: str | None = None
    ignore_volume: bool = False
    airplay2_timing: str = "auto"

    @classmethod
    def from_values(cls, values: Mapping[str, object]) -> PlayerSettings:
        """Validate stored values (missing keys take defaults) and build the settings."""
        known = _entries_by_key(player_config_entries(include_enabled=True))
        checked = validate_values(
            list(known.values()), {k: v for k, v in values.items() if k in known}
        )

        def pick(key: str) -> ConfigValueType:
            value = checked.get(key)
            return known[key].default_value if value is None else value

        return cls(
            protocol=ProtocolPreference(_as_int(pick(CONF_AIRPLAY_PROTOCOL))),
            encryption=bool(pick(CONF_ENCRYPTION)),
            alac_encode=bool(pick(CONF_ALAC_ENCODE)),
            ap2_stream_type=_STREAM_CHOICES[str(pick(CONF_AP2_STREAM_TYPE))],
            hires_audio=bool(pick(CONF_HIRES_AUDIO)),
            password=_as_optional_str(pick(CONF_PASSWORD)),
            sync_adjust_ms=_as_int(pick(CONF_SYNC_ADJUST)),
            output_buffer_ms=_as_int(pick(CONF_OUTPUT_BUFFER)),
            airplay_latency_ms=_as_int(pick(CONF_AIRPLAY_LATENCY)),
            raop_credentials=_as_optional_str(pick(CONF_RAOP_CREDENTIALS)),
            airplay_credentials=_as_optional_str(pick(CONF_AIRPLAY_CREDENTIALS)),
            ignore_volume=bool(pick(CONF_IGNORE_VOLUME)),
            airplay2_timing=str(pick(CONF_AIRPLAY2_TIMING)),
        )


def _as_int(value: ConfigValueType) -> int:
    assert isinstance(value, int), value
    return value


def _as_optional_str(value: ConfigValueType) -> str | None:
    return value if isinstance(value, str) and value else None
