"""A StreamSession with an AirPlay 2 member (250 ms latency) whose source is ready at once
(Music Assistant's buffered track): no frame is skipped as late at the start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from airplay_provider.protocol.streamer_status import Stats
from airplay_provider.protocol.txt import StreamingProtocol
from airplay_provider.session.group import StreamSession
from airplay_provider.session.launch import AP2_EXTRA_LEAD_S, ap2_extra_lead_s
from airplay_provider.session.processes import StreamTarget
from tests.audio import assert_audio_delivered, test_signal
from tests.group_helpers import ap2_target, flow_source
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_sender import NO_PTP_FEATURES


async def test_ap2_member_loses_nothing_at_the_start() -> None:
    signal = test_signal(2.0, seed=51)
    async with Ap2Receiver(features=NO_PTP_FEATURES) as receiver:
        source: AsyncIterator[bytes] = flow_source(signal)
        session = StreamSession(source)
        target = ap2_target("den", receiver.port)
        try:
            report = await session.start([target])
            assert report.failed == []
            assert await session.wait_ended(15)
        finally:
            await session.stop()
        (member,) = session.departed
        stats = member.streamer.last(Stats)
        assert stats is not None
        assert stats.late == 0
        assert receiver.session is not None
        segment = receiver.session.segments[-1]
        assert_audio_delivered(segment.pcm(), signal, tolerance_lsb=0)


def test_ap2_members_get_more_room_before_the_start_instant() -> None:
    def member(protocol: StreamingProtocol) -> Any:
        return SimpleNamespace(target=StreamTarget(name="x", host="h", port=1, protocol=protocol))

    raop, ap2 = member(StreamingProtocol.RAOP), member(StreamingProtocol.AIRPLAY2)
    assert ap2_extra_lead_s([raop]) == 0.0
    assert ap2_extra_lead_s([raop, ap2]) == AP2_EXTRA_LEAD_S
