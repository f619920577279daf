"""A player's AirPlay 2 stream type setting reaches the receiver through the session.

Both receivers advertise buffered audio (features bit 40) and are not Apple models, so `auto`
streams buffered (type 103); the player set to `realtime` must stay realtime (type 96).
"""

from __future__ import annotations

from airplay_provider.config import PlayerSettings
from airplay_provider.player import AirPlayPlayer
from airplay_provider.protocol.txt import (
    AIRPLAY_SERVICE_TYPE,
    StreamingProtocol,
    merge_records,
    parse_service,
)
from airplay_provider.session import StreamSession
from airplay_provider.session.players import target_for_player
from airplay_provider.session.processes import StreamTarget
from tests.audio import assert_audio_delivered, test_signal
from tests.group_helpers import flow_source
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_sender import NO_PTP_FEATURES

BUFFERED_FEATURES = NO_PTP_FEATURES | (1 << 40)
NOT_APPLE = "Speaker1,1"


def _target(name: str, mac: str, port: int, settings: PlayerSettings) -> StreamTarget:
    """The target the provider builds for an AirPlay 2 player on loopback with `settings`."""
    features = f"0x{BUFFERED_FEATURES & 0xFFFFFFFF:X},0x{BUFFERED_FEATURES >> 32:X}"
    record = parse_service(
        AIRPLAY_SERVICE_TYPE,
        f"{name}._airplay._tcp.local.",
        port=port,
        addresses=["127.0.0.1"],
        properties={"deviceid": mac, "features": features, "model": NOT_APPLE},
    )
    target = target_for_player(AirPlayPlayer(merge_records(None, record), settings))
    assert target.protocol is StreamingProtocol.AIRPLAY2
    return target


async def test_a_player_set_to_realtime_stays_realtime_where_auto_goes_buffered() -> None:
    signal = test_signal(1.5, seed=71)
    async with (
        Ap2Receiver(features=BUFFERED_FEATURES, model=NOT_APPLE) as pinned,
        Ap2Receiver(features=BUFFERED_FEATURES, model=NOT_APPLE) as auto,
    ):
        targets = [
            _target(
                "Pinned",
                "AA:BB:CC:00:00:01",
                pinned.port,
                PlayerSettings(ap2_stream_type="realtime", airplay_latency_ms=250),
            ),
            _target("Auto", "AA:BB:CC:00:00:02", auto.port, PlayerSettings()),
        ]
        assert [t.ap2_stream_type for t in targets] == ["realtime", "auto"]
        session = StreamSession(flow_source(signal))
        try:
            report = await session.start(targets)
            assert report.failed == []
            assert await session.wait_ended(20)
        finally:
            await session.stop()
        members = {member.key: member for member in session.departed}
        started = [members[t.key].started for t in targets]
        assert [event.stream_type if event else "-" for event in started] == [
            "realtime",
            "buffered",
        ]
        for receiver, wire_type in ((pinned, 96), (auto, 103)):
            emulated = receiver.session
            assert emulated is not None
            assert emulated.stream_types == [wire_type]
            assert emulated.errors == []
            assert_audio_delivered(emulated.segments[-1].pcm(), signal, tolerance_lsb=0)
