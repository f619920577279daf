"""Stand-in for music_assistant.controllers.streams.streams_controller.StreamsController.

`get_stream` has the server's signature and returns raw PCM in the requested format; the
test supplies the audio (`sources[queue_item_id]`) and every request is recorded.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from music_assistant_models.enums import ContentType

if TYPE_CHECKING:
    from music_assistant_models.media_items import AudioFormat
    from music_assistant_models.player import PlayerMedia

    from music_assistant.mass import MusicAssistant


class StreamsController:
    """Audio for players."""

    __slots__ = ("mass", "requests", "sources")

    def __init__(self, mass: MusicAssistant) -> None:
        """No audio yet."""
        self.mass = mass
        self.sources: dict[str, bytes] = {}
        self.requests: list[tuple[str | None, AudioFormat, str | None]] = []

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
        data = self.sources[media.queue_item_id or media.uri]
        chunk = pcm_format.sample_rate * pcm_format.channels * pcm_format.bit_depth // 8
        return _chunks(data, chunk)


async def _chunks(data: bytes, size: int) -> AsyncGenerator[bytes, None]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
