"""A StreamSession mixing a buffered AirPlay 2 member, a realtime AirPlay 2 member and a RAOP
member: every member plays session frame f at the session's instant + f/44100 (± 1 frame), also
through the session's hold at connect (pause, flush) and start (NTPSTART, PLAY)."""

from __future__ import annotations

from group_helpers import FRAME_NTP, flow_source, raop_target, schedule_error_frames
from receivers.raop_emulator import RaopEmulator

from airplay_provider.protocol.streamer_status import Playing
from airplay_provider.protocol.timing import unix_ns_from_ntp
from airplay_provider.protocol.txt import StreamingProtocol
from airplay_provider.session import StreamSession
from airplay_provider.session_member import SessionMember
from airplay_provider.streamers import StreamTarget
from tests.audio import assert_audio_delivered, test_signal
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_sender import NO_PTP_FEATURES
from tests.receivers.ap2_stream import Ap2StreamSession

RATE = 44100
FRAME_NS = 1e9 / RATE


def _ap2_target(name: str, port: int) -> StreamTarget:
    return StreamTarget(
        name=name,
        host="127.0.0.1",
        port=port,
        protocol=StreamingProtocol.AIRPLAY2,
        latency_ms=250,
        txt={"model": "Test"},
        player_id=name,
    )


def _ap2_error_frames(receiver: Ap2Receiver, member: SessionMember, frame: int) -> float:
    """(anchored play instant of session `frame` at the AP2 emulator) − (the member's start +
    (frame − offset)/44100), in frames."""
    session = receiver.session
    assert session is not None
    playing = member.streamer.last(Playing)
    assert playing is not None
    k = frame - member.offset
    rtp = (playing.rtptime + k - playing.first_sample) & 0xFFFFFFFF
    scheduled_ns = session.segments[-1].scheduled_ns(rtp)
    expected_ns = unix_ns_from_ntp(member.start_ntp + round(k * FRAME_NTP))
    return (scheduled_ns - expected_ns) / FRAME_NS


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
            _ap2_target("buffered", buffered.port),
            _ap2_target("realtime", realtime.port),
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
