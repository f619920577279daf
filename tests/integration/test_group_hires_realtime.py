"""A mixed hi-res group (Den: 24-bit/48 kHz buffered; Attic: 16-bit/44.1 kHz through the
group's resampling branch) fed by a source that produces audio at real time, as Music
Assistant's flow stream does (never ahead of the wall clock), paused and resumed twice: each
member plays exactly the audio it had not played (Den bit-exact at 24 bits, Attic sample for
sample what the branch's resampler makes of the source), on each timeline (± 1 frame by the
emulators' schedules), and the two stay within a frame of each other.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator

import pytest
from music_assistant_models.player import PlayerMedia

from airplay_provider.pcm_convert import flow_to_s16, flow_to_s24
from airplay_provider.protocol.timing import ntp_add_frames, unix_ns_from_ntp
from airplay_provider.session.branch import resampler_argv
from airplay_provider.session.member import MemberState, SessionMember
from airplay_provider.session.pcm_format import CD_FORMAT, HIRES_FORMAT
from tests.audio import locate_exact
from tests.integration.test_group_hires import (
    BUFFERED,
    HIRES,
    NOT_APPLE,
    PLAIN,
    Source,
    _playback,
    _player,
    flow_24,
)
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_segment import Segment
from tests.receivers.ap2_sender import NO_PTP_FEATURES

CHUNK_S = 0.02  # the source yields 20 ms of audio per 20 ms of wall clock
PAUSE_S = 0.4


class RealTimeSource(Source):
    """A flow source at 48 kHz whose chunk n comes no earlier than n · CHUNK_S after the first
    (on the wall clock, catching up after a wait as a live stream does): the session never has
    audio ahead of real time."""

    def __init__(self, flow: bytes) -> None:
        super().__init__(flow, 48000)

    async def _chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        step = round(CHUNK_S * 48000) * 8
        began = loop.time()
        for n, offset in enumerate(range(0, len(self.flow), step)):
            await asyncio.sleep(max(0.0, began + n * CHUNK_S - loop.time()))
            yield self.flow[offset : offset + step]


def _branch_reference(flow: bytes) -> bytes:
    """What the branch makes of the whole source: s16le at 44.1 kHz (the same ffmpeg with the
    same arguments, in one run)."""
    done = subprocess.run(
        resampler_argv(HIRES_FORMAT, CD_FORMAT.rate),
        input=flow_to_s24(flow),
        capture_output=True,
        check=True,
        timeout=30,
    )
    return flow_to_s16(done.stdout)


def _error_ns(
    segment: Segment,
    member: SessionMember,
    span: tuple[int, int | None],
    expected: bytes,
    start_ntp: int,
) -> int:
    """The segment holds the member's audio from its frame `first` exactly, at least up to
    `end` (its next pause; None: all the rest); how far from ``start_ntp + (first +
    rate/2)/rate`` the emulator schedules the frame half a second on (ns)."""
    first, end = span
    rate, size = member.target.rate, member.frame_bytes
    received = segment.pcm()
    probe = expected[first * size : (first + 352) * size]
    head = received.find(probe)
    while head >= 0 and head % size:
        head = received.find(probe, head + 1)
    assert head >= 0, (member.key, first, "first packet not received")
    assert not any(received[:head]), (member.key, first, "sound before the first frame")
    tail = expected[first * size :][: len(received) - head]
    offset = locate_exact(received, tail, frame_bytes=size)
    wanted = len(expected) // size if end is None else end
    assert len(tail) // size >= wanted - first, (member.key, first, end, "audio missing")
    assert not any(received[offset * size + len(tail) :]), (member.key, "sound after the end")
    assert segment.first_rtp is not None
    k = rate // 2
    rtp = (segment.first_rtp + offset + k) & 0xFFFFFFFF
    return segment.scheduled_ns(rtp) - unix_ns_from_ntp(ntp_add_frames(start_ntp, first + k, rate))


@pytest.mark.parametrize(
    "plays_s",
    [
        pytest.param((1.2, 0.9), id="pauses-while-playing"),
        pytest.param((1.2, 0.3), id="pauses-again-before-the-resumed-start"),
    ],
)
async def test_a_mixed_group_on_a_real_time_source_pauses_twice_bit_exact_in_sync(
    plays_s: tuple[float, float],
) -> None:
    flow = flow_24(3.0, seed=91)
    expected = {24: flow_to_s24(flow), 16: _branch_reference(flow)}
    source = RealTimeSource(flow)
    async with (
        Ap2Receiver(features=BUFFERED, model=NOT_APPLE) as den,
        Ap2Receiver(features=NO_PTP_FEATURES, model=NOT_APPLE) as attic,
    ):
        players = [
            _player("Den", "AA:BB:CC:00:09:01", den.port, BUFFERED, HIRES),
            _player("Attic", "AA:BB:CC:00:09:02", attic.port, NO_PTP_FEATURES, PLAIN),
        ]
        playback = _playback(players, source)
        try:
            session = await playback.play(players[0], players[1:], PlayerMedia(uri="test://rt"))
            assert session is not None
            assert (session.pcm_format, list(session.branches)) == (HIRES_FORMAT, [CD_FORMAT])
            members = dict(session.members)
            timelines = [(session.start_ntp, dict.fromkeys(members, 0))]
            for play_s in plays_s:  # plays a while, pauses PAUSE_S (not assertions)
                await asyncio.sleep(play_s)
                await session.pause()
                paused = {key: m.paused_frame for key, m in members.items()}
                await asyncio.sleep(PAUSE_S)
                await session.resume()
                frames = {key: frame for key, frame in paused.items() if frame is not None}
                assert frames.keys() == members.keys(), paused
                timelines.append((session.start_ntp, frames))
            assert await session.wait_ended(20)
        finally:
            await playback.close()
    assert source.asked == [48000]
    errors: list[dict[str, int]] = [{} for _ in timelines]
    for receiver, player in ((den, players[0]), (attic, players[1])):
        member = members[player.player_id]
        assert not member.misaligned, member.key
        assert member.state is MemberState.FINISHED, (member.key, member.state, member.error)
        emulated = receiver.session
        assert emulated is not None
        assert emulated.errors == []
        # one segment per timeline from the first with sound on (the held start's has none)
        first_heard = next(i for i, s in enumerate(emulated.segments) if any(s.pcm()))
        played = emulated.segments[first_heard:]
        assert len(played) == len(timelines), (member.key, len(played), len(timelines))
        ends = [frames[member.key] for _, frames in timelines[1:]] + [None]
        for index, (segment, end) in enumerate(zip(played, ends, strict=True)):
            start_ntp, frames = timelines[index]
            first = frames[member.key]
            if end == first and not any(segment.pcm()):
                continue  # paused again before the resumed start: nothing sent, nothing heard
            errors[index][member.key] = _error_ns(
                segment, member, (first, end), expected[member.target.bits], start_ntp
            )
    for timeline_errors in errors:
        for key, error_ns in timeline_errors.items():  # each on its timeline, ± 1 frame
            assert abs(error_ns) * 44100 / 1e9 <= 1.0, (key, error_ns, errors)
        # and the two within a frame of each other
        spread_ns = max(timeline_errors.values(), default=0) - min(
            timeline_errors.values(), default=0
        )
        assert spread_ns * 44100 / 1e9 <= 1.0, errors
