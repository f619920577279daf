"""The pairing entries of a player's settings (Music Assistant's UI and `airplay-provider config`):
status, PIN field and the start/finish/reset actions, by the pairing's state."""

from __future__ import annotations

from music_assistant_models.config_entries import ConfigEntry
from music_assistant_models.enums import ConfigEntryType

from airplay_provider.config import (
    CATEGORY,
    CONF_ACTION_FINISH_PAIRING,
    CONF_ACTION_RESET_PAIRING,
    CONF_ACTION_START_PAIRING,
    CONF_PAIRING_ERROR,
    CONF_PAIRING_INSTRUCTIONS,
    CONF_PAIRING_PIN,
    CONF_PAIRING_STATUS,
)


def pairing_config_entries(
    protocol_label: str,
    *,
    required: bool,
    paired: bool,
    in_progress: bool,
    error: str | None = None,
) -> list[ConfigEntry]:
    """The pairing entries shown before the settings (none when there is nothing to do).

    Paired: status + reset. Pairing in progress: PIN field + finish. Required and not paired:
    instructions + start. `error` (the last attempt's failure, no secrets) becomes an ALERT.
    """
    entries: list[ConfigEntry] = []
    if error:
        entries.append(
            ConfigEntry(
                key=CONF_PAIRING_ERROR,
                type=ConfigEntryType.ALERT,
                label=f"Pairing failed: {error}",
                required=False,
                category=CATEGORY,
            )
        )
    if in_progress:
        entries += [
            ConfigEntry(
                key=CONF_PAIRING_PIN,
                type=ConfigEntryType.STRING,
                label="PIN shown on the device",
                required=True,
                description="Enter the 4-digit PIN the device displays now, then finish.",
                category=CATEGORY,
            ),
            ConfigEntry(
                key=CONF_ACTION_FINISH_PAIRING,
                type=ConfigEntryType.ACTION,
                label="Finish pairing",
                action=CONF_ACTION_FINISH_PAIRING,
                action_label="Finish pairing",
                required=False,
                category=CATEGORY,
            ),
        ]
    elif paired:
        entries += [
            ConfigEntry(
                key=CONF_PAIRING_STATUS,
                type=ConfigEntryType.LABEL,
                label=f"Device is paired ({protocol_label}) and ready to use.",
                required=False,
                category=CATEGORY,
            ),
            ConfigEntry(
                key=CONF_ACTION_RESET_PAIRING,
                type=ConfigEntryType.ACTION,
                label="Reset pairing",
                action=CONF_ACTION_RESET_PAIRING,
                action_label="Reset pairing",
                description="Forget the stored credentials (pair again to play).",
                required=False,
                category=CATEGORY,
            ),
        ]
    elif required:
        entries += [
            ConfigEntry(
                key=CONF_PAIRING_INSTRUCTIONS,
                type=ConfigEntryType.LABEL,
                label=(
                    f"This device requires {protocol_label} pairing. Start pairing: the device "
                    "shows a 4-digit PIN; enter it here and finish."
                ),
                required=False,
                category=CATEGORY,
            ),
            ConfigEntry(
                key=CONF_ACTION_START_PAIRING,
                type=ConfigEntryType.ACTION,
                label="Start pairing",
                action=CONF_ACTION_START_PAIRING,
                action_label="Start pairing",
                required=False,
                category=CATEGORY,
            ),
        ]
    return entries
