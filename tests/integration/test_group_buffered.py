"""A StreamSession mixing a buffered AirPlay 2 member, a realtime AirPlay 2 member and a RAOP
member: every member plays session frame f at the session's instant + f/44100 (± 1 frame), also
through the session's hold at connect (pause, flush) and start (NTPSTART, PLAY)."""

from __future__ import annotations

import asyncio

from airplay_provider.protocol.streamer_status import Playing
from airplay_provider.protocol.timing import unix_ns_from_ntp
from airplay_provider.session import StreamSession
from airplay_provider.session.member import SessionMember
from tests.audio import assert_audio_delivered, test_signal
from tests.group_helpers import (
    FRAME_NTP,
    ap2_target,
    flow_source,
    play_ntp,
    raop_target,
    schedule_error_frames,
)
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_sender import NO_PTP_FEATURES
from tests.receivers.ap2_stream import Ap2StreamSession
from tests.receivers.raop_emulator import RaopEmulator

RATE = 44100
FRAME_NS = 1e9 / RATE


def _ap2_play_ns(receiver: Ap2Receiver, member: SessionMember, frame: int) -> int:
    """When the AP2 emulator plays session `frame` of `member` (Unix ns; from its latest
    segment's anchor and the member's latest `[STATUS] playing`)."""
    session = receiver.session
    assert session is not None
    playing = member.streamer.last(Playing)
    assert playing is not None
    k = frame - member.offset
    rtp = (playing.rtptime + k - playing.first_sample) & 0xFFFFFFFF
    return session.segments[-1].scheduled_ns(rtp)


def _ap2_error_frames(receiver: Ap2Receiver, member: SessionMember, frame: int) -> float:
    """(anchored play instant of session `frame` at the AP2 emulator) − (the member's start +
    (frame − offset)/44100), in frames."""
    k = frame - member.offset
    expected_ns = unix_ns_from_ntp(member.start_ntp + round(k * FRAME_NTP))
    return (_ap2_play_ns(receiver, member, frame) - expected_ns) / FRAME_NS


def _gap_to_raop_frames(
    receiver: Ap2Receiver, member: SessionMember, raop: RaopEmulator, other: SessionMember, f: int
) -> float:
    """How much later the AP2 member plays session frame `f` than the RAOP member, in frames."""
    raop_ns = unix_ns_from_ntp(play_ntp(raop, other, f))
    return (_ap2_play_ns(receiver, member, f) - raop_ns) / FRAME_NS


def _emulator_session(receiver: Ap2Receiver) -> Ap2StreamSession:
    assert receiver.session is not None
    return receiver.session


async def test_buffered_realtime_and_raop_members_play_each_frame_together() -> None:
    signal = test_signal(3.0, seed=61)
    async with (
        Ap2Receiver(features=NO_PTP_FEATURES | (1 << 40), model="Speaker1,1") as buffered,
        Ap2Receiver(features=NO_PTP_FEATURES) as realtime,
        RaopEmulator() as raop,
    ):
        session = StreamSession(flow_source(signal))
        targets = [
            ap2_target("buffered", buffered.port),
            ap2_target("realtime", realtime.port),
            raop_target("raop", raop.port),
        ]
        try:
            report = await session.start(targets)
            assert report.failed == []
            assert await session.wait_ended(20)
        finally:
            await session.stop()
        members = {member.key: member for member in session.departed}
        started = [members[key].started for key in ("buffered", "realtime", "raop")]
        assert [event.stream_type if event else "-" for event in started] == [
            "buffered",
            "realtime",
            None,
        ]
        for receiver in (buffered, realtime):
            emulated = _emulator_session(receiver)
            assert emulated.errors == []
            assert_audio_delivered(emulated.segments[-1].pcm(), signal, tolerance_lsb=0)
        assert raop.errors == []
        for frame in (0, 352, RATE, 2 * RATE):
            errors = [
                _ap2_error_frames(buffered, members["buffered"], frame),
                _ap2_error_frames(realtime, members["realtime"], frame),
                schedule_error_frames(raop, members["raop"], frame),
            ]
            assert all(abs(error) <= 1.0 for error in errors), (frame, errors)
        buffered_stream = _emulator_session(buffered).buffered
        assert buffered_stream is not None
        assert buffered_stream.late_frames(_emulator_session(buffered).segments[-1]) == 0


BUFFERED_FEATURES = NO_PTP_FEATURES | (1 << 40)
BUFFERED_MODEL = "Speaker1,1"


async def test_group_pause_and_resume_keep_a_buffered_member_with_a_raop_one() -> None:
    signal = test_signal(5.0, seed=62)
    async with (
        Ap2Receiver(features=BUFFERED_FEATURES, model=BUFFERED_MODEL) as buffered,
        RaopEmulator() as raop,
    ):
        session = StreamSession(flow_source(signal))
        await session.start([ap2_target("buffered", buffered.port), raop_target("raop", raop.port)])
        await asyncio.sleep(1.6)  # let it play a while (not an assertion)
        await session.pause()
        ap2_member, raop_member = session.members["buffered"], session.members["raop"]
        assert ap2_member.paused_frame is not None
        await asyncio.sleep(0.8)
        await session.resume()
        assert await session.wait_ended(20)
        assert not ap2_member.misaligned
        after = max(ap2_member.paused_frame, raop_member.paused_frame or 0)
        for frame in (after, after + RATE, len(signal) // 4 - 1):
            gap = _gap_to_raop_frames(buffered, ap2_member, raop, raop_member, frame)
            assert abs(gap) <= 1.0, f"{gap:.2f} frames apart at {frame}"
        emulated = _emulator_session(buffered)
        assert emulated.errors == []
        assert emulated.buffered is not None
        assert emulated.buffered.rates[-2:] == [0, 1]
        tail = signal[4 * ap2_member.paused_frame :]
        assert_audio_delivered(emulated.segments[-1].pcm(), tail, tolerance_lsb=0)
        assert emulated.buffered.late_frames(emulated.segments[-1]) == 0


async def test_a_buffered_member_joins_late_on_the_groups_timeline() -> None:
    signal = test_signal(6.0, seed=63)
    async with (
        RaopEmulator() as raop,
        Ap2Receiver(features=BUFFERED_FEATURES, model=BUFFERED_MODEL) as buffered,
    ):
        session = StreamSession(flow_source(signal))
        await session.start([raop_target("raop", raop.port)])
        await asyncio.sleep(2.0)  # the group plays a while before the join (not an assertion)
        join = await session.add_member(ap2_target("buffered", buffered.port))
        assert join.error is None
        p = join.offset
        assert await session.wait_ended(20)
        members = {member.key: member for member in session.departed}
        joiner = members["buffered"]
        for frame in (p, p + RATE, len(signal) // 4 - 1):
            assert abs(_ap2_error_frames(buffered, joiner, frame)) <= 1.0
            gap = _gap_to_raop_frames(buffered, joiner, raop, members["raop"], frame)
            assert abs(gap) <= 1.0, f"{gap:.2f} frames apart at {frame}"
        emulated = _emulator_session(buffered)
        assert emulated.errors == []
        assert_audio_delivered(emulated.segments[-1].pcm(), signal[4 * p :], tolerance_lsb=0)
