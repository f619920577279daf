"""Play a URL or a local file on a device that fetches and plays media itself (AirPlay video)."""

from airplay_provider.video.player import PlayResult, UrlPlayer, play_url

__all__ = ["PlayResult", "UrlPlayer", "play_url"]
