"""Command-line text → typed config values (`airplay-provider config`, `--interface`): the words
a setting takes (true/false, protocol names, choices), then the same validation as everywhere."""

from __future__ import annotations

import ipaddress

from music_assistant_models.config_entries import ConfigEntry, ConfigValueType
from music_assistant_models.enums import ConfigEntryType

from airplay_provider.config import (
    CONF_AIRPLAY_PROTOCOL,
    CONF_MDNS_INTERFACES,
    ConfigValidationError,
    validate_value,
)
from airplay_provider.protocol.txt import ProtocolPreference

_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})
_PROTOCOL_WORDS = {
    "auto": ProtocolPreference.AUTO,
    "raop": ProtocolPreference.RAOP,
    "airplay1": ProtocolPreference.RAOP,
    "airplay2": ProtocolPreference.AIRPLAY2,
    "ap2": ProtocolPreference.AIRPLAY2,
}


def parse_text_value(entry: ConfigEntry, text: str) -> ConfigValueType:
    """Turn command-line text into a typed, validated value for `entry`."""
    key = entry.key
    word = text.strip().lower()
    value: object
    if entry.type is ConfigEntryType.BOOLEAN:
        if word in _TRUE_WORDS:
            value = True
        elif word in _FALSE_WORDS:
            value = False
        else:
            raise ConfigValidationError(key, f"{key} must be true or false, got {text!r}")
    elif entry.type is ConfigEntryType.INTEGER:
        if key == CONF_AIRPLAY_PROTOCOL and word in _PROTOCOL_WORDS:
            value = int(_PROTOCOL_WORDS[word])
        else:
            try:
                value = int(word)
            except ValueError:
                raise ConfigValidationError(
                    key, f"{key} must be a whole number, got {text!r}"
                ) from None
    elif entry.type is ConfigEntryType.FLOAT:
        try:
            value = float(word)
        except ValueError:
            raise ConfigValidationError(key, f"{key} must be a number, got {text!r}") from None
    elif entry.type is ConfigEntryType.STRING and entry.options:
        value = word  # a choice: its words are lower case
    elif entry.type in (ConfigEntryType.STRING, ConfigEntryType.SECURE_STRING):
        value = text if text else None
    else:
        value = text
    if key == CONF_MDNS_INTERFACES and isinstance(value, str):
        parse_interfaces(value)
    return validate_value(entry, value)


def parse_interfaces(text: str | None) -> list[str] | None:
    """``"127.0.0.1, ::1"`` → ``["127.0.0.1", "::1"]``; empty → None (all interfaces)."""
    if not text or not text.strip():
        return None
    result = []
    for part in text.split(","):
        candidate = part.strip()
        if not candidate:
            continue
        try:
            result.append(str(ipaddress.ip_address(candidate)))
        except ValueError:
            raise ConfigValidationError(
                CONF_MDNS_INTERFACES, f"{candidate!r} is not an IP address of this host"
            ) from None
    return result or None
