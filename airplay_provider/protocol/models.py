"""Model names: AirPlay model ids and MAC families → (manufacturer, friendly model); the models
known not to play (pure).
"""

from __future__ import annotations

_EXACT_MODELS: dict[str, tuple[str, str]] = {
    "AudioAccessory1,1": ("Apple", "HomePod"),
    "AudioAccessory1,2": ("Apple", "HomePod"),
    "AudioAccessory5,1": ("Apple", "HomePod Mini"),
    "AudioAccessorySingle5,1": ("Apple", "HomePod Mini"),
    "AudioAccessory6,1": ("Apple", "HomePod 2"),
    "AppleTV1,1": ("Apple", "Apple TV Gen1"),
    "AppleTV2,1": ("Apple", "Apple TV Gen2"),
    "AppleTV3,1": ("Apple", "Apple TV Gen3"),
    "AppleTV3,2": ("Apple", "Apple TV Gen3"),
    "AppleTV5,3": ("Apple", "Apple TV Gen4"),
    "AppleTV6,2": ("Apple", "Apple TV 4K"),
    "AppleTV11,1": ("Apple", "Apple TV 4K Gen2"),
    "AppleTV14,1": ("Apple", "Apple TV 4K Gen3"),
    "UPL-AMP": ("Ubiquiti Inc.", "UPL-AMP"),
}
_MAC_FAMILIES = (
    ("MacBookPro", "MacBook Pro"),
    ("MacBookAir", "MacBook Air"),
    ("MacBook", "MacBook"),
    ("iMac", "iMac"),
    ("Macmini", "Mac mini"),
    ("MacPro", "Mac Pro"),
    ("MacStudio", "Mac Studio"),
)

#: (manufacturer, model) patterns known not to play; ``*`` matches any value.
BROKEN_MODELS: tuple[tuple[str, str], ...] = (("Samsung", "*"),)


def model_info(manufacturer: str | None, model: str | None) -> tuple[str, str]:
    """(manufacturer, friendly model) from TXT `manufacturer` and `model` (or `am`).

    Both present → returned verbatim. Otherwise the model id is looked up in the table.
    """
    if manufacturer and model:
        return manufacturer, model
    if not model:
        return manufacturer or "Unknown", "Unknown"
    if model in _EXACT_MODELS:
        return _EXACT_MODELS[model]
    if "AirPort" in model:
        return "Apple", "AirPort Express"
    if "AudioAccessory" in model:
        return "Apple", "HomePod"
    if "AppleTV" in model:
        return "Apple", "Apple TV"
    for prefix, friendly in _MAC_FAMILIES:
        if model.startswith(prefix):
            return "Apple", f"{friendly} ({model})"
    if model.startswith("Mac"):
        return "Apple", f"Mac ({model})"
    return manufacturer or "AirPlay", model


def is_apple(manufacturer: str) -> bool:
    """Apple devices become PLAYER-type players; everything else PROTOCOL-type."""
    return manufacturer.lower().startswith("apple")


def is_broken_model(manufacturer: str, model: str) -> bool:
    """True for models in `BROKEN_MODELS` (disabled by default, with an alert)."""
    return any(
        _matches(pattern_maker, manufacturer) and _matches(pattern_model, model)
        for pattern_maker, pattern_model in BROKEN_MODELS
    )


def _matches(pattern: str, value: str) -> bool:
    return pattern in ("*", value)


def is_shairport_sync(model_id: str | None) -> bool:
    """shairport-sync announces ``ShairportSync`` (classic) or ``Shairport Sync`` (AirPlay 2)."""
    return (model_id or "").replace(" ", "").lower() == "shairportsync"
