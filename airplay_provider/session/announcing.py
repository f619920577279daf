"""Announcements on a running session: decode, place on the timeline, wait until heard.

The mix itself is `mixing.AnnouncementMixer`, applied by the feed to every chunk before it is
fanned out (feed.py `_distribute`), so all members get identical samples at identical session
frames and no stream restarts. Audio already handed to the members cannot change: an
announcement starts no earlier than the first frame not yet fed, plus the ramp down (up to
`ahead_s` after "now"). A hi-res session mixes in its own format (s24le, 48 kHz frames); its
16-bit members get the mix through their branch, which resamples the session's mixed PCM.
`SessionAnnouncements` holds these methods of `StreamSession`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

from airplay_provider.audio_source import AudioSourceError, decode_source
from airplay_provider.pcm_convert import flow_to_s16, flow_to_s24
from airplay_provider.session.mixing import (
    DEFAULT_DUCK_DB,
    DEFAULT_RAMP_S,
    Announcement,
    AnnouncementMixer,
    announcement_at,
)
from airplay_provider.session.pcm_format import CD_FORMAT, PcmFormat
from airplay_provider.session.reports import SessionError, SessionState
from airplay_provider.session.timeline import FLOW_FRAME_BYTES

MAX_ANNOUNCEMENT_S: Final = 600.0
DECODE_TIMEOUT_S: Final = 30.0
WAIT_POLL_S: Final = 0.05
#: Audio converted per event-loop pass (~6 ms of work): a host that hands the announcement
#: over in one long chunk (Music Assistant) held its loop 0.16 s otherwise.
CONVERT_PIECE_S: Final = 0.25


async def collect_announcement(
    flow: AsyncIterator[bytes],
    what: str,
    *,
    timeout: float = DECODE_TIMEOUT_S,
    max_seconds: float = MAX_ANNOUNCEMENT_S,
    pcm_format: PcmFormat = CD_FORMAT,
) -> bytes:
    """All of a flow-PCM source (f32le stereo at `pcm_format`'s rate) in `pcm_format` (s16le,
    or s24le for a hi-res session), with the music's own conversion. AudioSourceError when it
    fails, is empty, longer than `max_seconds` or not complete within `timeout`; `what` names
    it in the message."""
    convert = flow_to_s24 if pcm_format.bits == 24 else flow_to_s16
    limit = round(max_seconds * pcm_format.rate) * pcm_format.bytes_per_frame
    step = round(CONVERT_PIECE_S * pcm_format.rate) * FLOW_FRAME_BYTES
    pieces: list[bytes] = []
    size = 0
    carry = b""
    try:
        async with asyncio.timeout(timeout):
            async for chunk in flow:
                data = carry + chunk
                whole = len(data) - len(data) % FLOW_FRAME_BYTES
                carry = data[whole:]
                for start in range(0, whole, step):  # a long chunk in pieces, one per pass
                    piece = convert(data[start : min(start + step, whole)])
                    size += len(piece)
                    if size > limit:
                        raise AudioSourceError(f"{what}: longer than {max_seconds:g} s")
                    pieces.append(piece)
                    await asyncio.sleep(0)
    except TimeoutError:
        raise AudioSourceError(f"{what}: not complete within {timeout:g} s") from None
    finally:
        closer = getattr(flow, "aclose", None)
        if closer is not None:
            await closer()
    if not size:
        raise AudioSourceError(f"{what}: no audio")
    return b"".join(pieces)


async def decode_announcement(
    source: str | Path, *, timeout: float = DECODE_TIMEOUT_S, pcm_format: PcmFormat = CD_FORMAT
) -> bytes:
    """A file or URL, decoded with ffmpeg, in `pcm_format` (default s16le stereo 44.1 kHz; see
    `collect_announcement`)."""
    flow = decode_source(str(source), rate=pcm_format.rate)
    return await collect_announcement(flow, str(source), timeout=timeout, pcm_format=pcm_format)


class SessionAnnouncements:
    """The announcement part of `StreamSession` (a mixin: its state lives in the session)."""

    mixer: AnnouncementMixer
    pcm_format: PcmFormat
    fed: int
    state: SessionState
    logger: logging.Logger
    _stopping: bool
    _ended: asyncio.Event

    @property
    def position_s(self) -> float:
        raise NotImplementedError

    async def announce(
        self,
        announcement: bytes | str | Path,
        *,
        at: float | None = None,
        duck_db: float = DEFAULT_DUCK_DB,
        ramp_s: float = DEFAULT_RAMP_S,
        pcm_format: PcmFormat = CD_FORMAT,
    ) -> Announcement:
        """Mix `announcement` over the music in every member, the music ducked `duck_db`.

        `announcement`: PCM in `pcm_format` (s16le stereo 44.1 kHz unless said), which must be
        the session's (`self.pcm_format`: s24le 48 kHz in a hi-res session), or a file or URL
        (decoded with ffmpeg in the session's format). `at`: the session position (s) where
        its first sample plays; None, or a position whose audio was already handed to the
        members, means as early as the session can. Returns it as placed (session frames:
        `start`, `end`). SessionError when the session is ending; ValueError on a bad level,
        ramp or position, or PCM in another format than the session's.
        """
        if at is not None and not 0.0 <= at < math.inf:
            raise ValueError(f"at must be a position ≥ 0 s, got {at!r}")
        if isinstance(announcement, bytes) and pcm_format != self.pcm_format:
            raise ValueError(
                f"announcement PCM is {pcm_format}, the session plays {self.pcm_format}: "
                "decode it in the session's format (or pass the file or URL)"
            )
        self._check_can_announce()
        if not isinstance(announcement, bytes):
            announcement = await decode_announcement(announcement, pcm_format=self.pcm_format)
            self._check_can_announce()
        rate = self.pcm_format.rate
        at_frame = None if at is None else round(at * rate)
        placed = announcement_at(
            announcement,
            at_frame,
            earliest_frame=self.fed,
            duck_db=duck_db,
            ramp_s=ramp_s,
            pcm_format=self.pcm_format,
        )
        self.mixer.add(placed)
        if at_frame is not None and placed.start != at_frame:
            self.logger.info(
                "announcement asked at %.3f s plays at %.3f s (audio up to there already sent)",
                at,
                placed.start / rate,
            )
        return placed

    def _check_can_announce(self) -> None:
        if self._stopping or self.state in (SessionState.DRAINING, SessionState.ENDED):
            raise SessionError(f"cannot announce on a {self.state} session")

    async def wait_announced(
        self, announcement: Announcement, timeout: float | None = None
    ) -> bool:
        """Until the music is back at full level after `announcement` (position past its
        ramp up); False when the session ended first or after `timeout`."""
        done = announcement.duck_end / announcement.pcm_format.rate
        try:
            async with asyncio.timeout(timeout):
                while self.position_s < done:
                    if self._ended.is_set():
                        return False
                    try:
                        await asyncio.wait_for(self._ended.wait(), WAIT_POLL_S)
                    except TimeoutError:
                        continue
        except TimeoutError:
            return False
        return True
