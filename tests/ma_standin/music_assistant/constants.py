"""Stand-in: the few constants of music_assistant.constants the base classes use."""

from typing import Final

MASS_LOGGER_NAME: Final[str] = "music_assistant"
CONF_LOG_LEVEL: Final[str] = "log_level"
CONF_PLAYERS: Final[str] = "players"
CONF_PROVIDERS: Final[str] = "providers"
BASE_KEYS = ("enabled", "name", "available", "default_name", "provider", "type")
ENCRYPT_SUFFIX = "_encrypted_"
#: The server's pre-announce chime (a file in its resources folder).
ANNOUNCE_ALERT_FILE: Final[str] = "resources/announce.mp3"
