"""A StreamSession with three real shairport-sync receivers and the RAOP emulator as a fourth
member: all audio delivered to every receiver (±2 LSB), and the emulator's sync packets put
session frame k at T + k/44100 (± 1 frame)."""

from __future__ import annotations

import pytest

from airplay_provider.session import StreamSession
from airplay_provider.session.member import MemberState
from tests.audio import assert_audio_delivered, test_signal
from tests.group_helpers import alive, flow_source, member_pids, raop_target, schedule_error_frames
from tests.receivers.raop_emulator import RaopEmulator
from tests.receivers.shairport import StartShairport

pytestmark = pytest.mark.receiver

RATE = 44100


async def test_three_receivers_and_the_emulator_play_one_session(
    start_shairport: StartShairport,
) -> None:
    signal_pcm = test_signal(10.0, seed=41)
    receivers = [await start_shairport(f"room{i}") for i in range(3)]
    async with RaopEmulator() as emu:
        targets = [raop_target(r.name, r.port, volume=60) for r in receivers]
        targets.append(raop_target("emulator", emu.port))
        session = StreamSession(flow_source(signal_pcm))
        report = await session.start(targets)
        assert report.failed == []
        assert await session.wait_ended(30)
        states = {m.key: m.state for m in session.departed}
        assert set(states.values()) == {MemberState.FINISHED}, states
        for member in session.departed:
            started = member.started
            assert started is not None
            assert started.actual_ntp == session.start_ntp, (started, report)
            assert started.skipped_frames == 0
        assert not any(m.misaligned for m in session.departed)
        emulated = next(m for m in session.departed if m.key == "emulator")
        for frame in (0, 1, RATE, 5 * RATE, 10 * RATE - 1):
            error = schedule_error_frames(emu, emulated, frame)
            assert abs(error) <= 1.0, f"frame {frame} off by {error:.2f} frames"
    for receiver in receivers:
        comparison = assert_audio_delivered(await receiver.settled_output(), signal_pcm)
        assert comparison.frames_compared == len(signal_pcm) // 4
    assert not any(alive(pid) for pid in member_pids(session))
