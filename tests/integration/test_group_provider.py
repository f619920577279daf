"""The provider's player commands on a running group: play_media with members, a member added
(late join) and removed while it plays, group pause/resume, volume, stop — against emulators
registered as manual RAOP devices (no mDNS)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from music_assistant_models.enums import MediaType, PlaybackState, PlayerFeature
from music_assistant_models.player import PlayerMedia

from airplay_provider.host.standalone import StandaloneHost, manual_device
from airplay_provider.player import AirPlayPlayer
from airplay_provider.protocol.timing import volume_to_db
from airplay_provider.provider import AirPlayProvider
from airplay_provider.session import SessionState
from tests.group_helpers import FRAME_NTP, alive, member_pids, play_ntp
from tests.receivers.raop_emulator import RaopEmulator


async def test_group_commands_through_the_provider(tmp_path: Path) -> None:
    track = tmp_path / "tone.wav"
    await asyncio.to_thread(
        subprocess.run,
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=330:d=6", "-ac", "2",
         str(track)],
        check=True,
    )  # fmt: skip
    host = StandaloneHost()
    provider = AirPlayProvider(host, browse=False)
    host.provider = provider
    updates: list[tuple[str, PlaybackState]] = []
    host.on_update = lambda p: updates.append((p.player_id, p.state.playback_state))
    async with RaopEmulator() as emu_a, RaopEmulator() as emu_b, RaopEmulator() as emu_c:
        players: list[AirPlayPlayer] = []
        for index, emu in enumerate((emu_a, emu_b, emu_c)):
            device = manual_device("127.0.0.1", emu.port, name=f"room{index}")
            await provider.device_added(device)
            players.append(host.players[device.player_id])
        leader, second, third = players
        try:
            await provider.set_members(leader.player_id, [second.player_id])
            assert second.state.synced_to == leader.player_id
            assert PlayerFeature.PAUSE in leader.supported_features  # grouped pause is real
            media = PlayerMedia(uri=str(track), media_type=MediaType.TRACK, title="Tone")
            await provider.play_media(leader.player_id, media)
            found = provider.playback.session_of(second.player_id)
            assert found is not None
            session = found[1]
            assert leader.state.playback_state is PlaybackState.PLAYING
            assert second.state.current_media is media

            await asyncio.sleep(1.0)
            await provider.set_members(leader.player_id, [third.player_id])  # late join
            assert third.player_id in session.members
            await provider.cmd_volume_set(third.player_id, 35)

            await asyncio.sleep(1.0)
            await provider.cmd_pause(second.player_id)  # any member pauses the group
            assert session.state is SessionState.PAUSED
            assert {p.state.playback_state for p in players} == {PlaybackState.PAUSED}
            await asyncio.sleep(0.5)
            await provider.cmd_play(leader.player_id)
            assert session.state is SessionState.PLAYING

            await asyncio.sleep(1.0)
            await provider.set_members(leader.player_id, player_ids_to_remove=[second.player_id])
            assert second.player_id not in session.members
            assert second.state.synced_to is None
            assert second.state.playback_state is PlaybackState.IDLE
            assert emu_b.core.teardown_at is not None
            assert emu_a.core.teardown_at is None  # the others play on

            await provider.cmd_stop(leader.player_id)
            assert session.state is SessionState.ENDED
            assert provider.playback.sessions == {}
            assert {p.state.playback_state for p in players} == {PlaybackState.IDLE}
        finally:
            await provider.unload()
        assert not any(alive(pid) for pid in member_pids(session))
        # After the resume, leader and late joiner schedule the same frame at the same instant.
        members = {m.key: m for m in session.departed}
        lead_member, late_member = members[leader.player_id], members[third.player_id]
        assert lead_member.paused_frame is not None
        assert late_member.paused_frame is not None
        frame = max(lead_member.paused_frame, late_member.paused_frame) + 4410
        gap = play_ntp(emu_c, late_member, frame) - play_ntp(emu_a, lead_member, frame)
        assert abs(gap / FRAME_NTP) <= 1.0
        assert emu_c.core.volumes[-1] == volume_to_db(35)
        assert emu_a.core.metadata[0].text("minm") == "Tone"
    assert (leader.player_id, PlaybackState.PAUSED) in updates
