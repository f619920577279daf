"""Stand-in for music_assistant.controllers.streams.streams_controller.StreamsController.

`get_stream` has the server's signature and returns raw PCM in the requested format; the
test supplies the audio (`sources[queue_item_id]`; for an announcement `sources[its URL]`,
after `sources[chime URL]` when pre-announced, as the server chains them) and every request is
recorded. `get_announcement_url` keeps the announce data per player, as the server does.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from music_assistant_models.enums import ContentType, MediaType

if TYPE_CHECKING:
    from music_assistant_models.media_items import AudioFormat
    from music_assistant_models.player import PlayerMedia

    from music_assistant.mass import MusicAssistant


class StreamsController:
    """Audio for players."""

    __slots__ = ("announcements", "mass", "requests", "sources")

    def __init__(self, mass: MusicAssistant) -> None:
        """No audio yet."""
        self.mass = mass
        self.sources: dict[str, bytes] = {}
        self.requests: list[tuple[str | None, AudioFormat, str | None]] = []
        self.announcements: dict[str, dict[str, Any]] = {}

    @property
    def base_url(self) -> str:
        """The stream server's address (the stand-in serves nothing over HTTP)."""
        return "http://127.0.0.1:8097"

    def get_announcement_url(
        self,
        player_id: str,
        announce_data: dict[str, Any],
        content_type: ContentType = ContentType.MP3,
    ) -> str:
        """The player's announcement stream URL; the announce data is kept for it."""
        self.announcements[player_id] = announce_data
        return f"{self.base_url}/announcement/{player_id}.{content_type.value}"

    def get_stream(
        self,
        media: PlayerMedia,
        pcm_format: AudioFormat,
        player_id: str | None = None,
        force_flow_mode: bool = False,
    ) -> AsyncGenerator[bytes, None]:
        """The PCM registered for the media's queue item, in one-second chunks."""
        if not pcm_format.content_type.is_pcm():
            raise ValueError(f"not a PCM format: {pcm_format}")
        if pcm_format.content_type is not ContentType.PCM_F32LE:
            raise ValueError("the stand-in only serves f32le")
        self.requests.append((media.queue_item_id, pcm_format, player_id))
        if media.media_type == MediaType.ANNOUNCEMENT:  # the server's special case
            assert media.custom_data
            url = media.custom_data["announcement_url"]
            chime = (
                media.custom_data["pre_announce_url"] if media.custom_data["pre_announce"] else None
            )
            data = (self.sources[chime] if chime else b"") + self.sources[url]
        else:
            data = self.sources[media.queue_item_id or media.uri]
        chunk = pcm_format.sample_rate * pcm_format.channels * pcm_format.bit_depth // 8
        return _chunks(data, chunk)


async def _chunks(data: bytes, size: int) -> AsyncGenerator[bytes, None]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
