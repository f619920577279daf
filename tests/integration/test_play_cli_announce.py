"""`airplay-provider play SOURCE --player ... --announce FILE --announce-at SECONDS` as a user
runs it, against two RAOP emulators: both get the music with the announcement mixed in from
exactly that session position, sample for sample, scheduled at the same instant."""

from __future__ import annotations

from pathlib import Path

from tests.announce_reference import expected_mix, write_wav
from tests.audio import test_signal
from tests.integration.test_play_cli import PREROLL_FRAMES, run_cli, sample0_ntp, write_track
from tests.receivers.raop_emulator import RaopEmulator

RATE = 44100
FRAME_NTP = 2**32 / RATE


async def test_play_with_an_announcement_at_a_position(tmp_path: Path) -> None:
    music = test_signal(4.0, seed=71)
    voice = test_signal(0.7, seed=72)
    track = write_track(tmp_path / "track.flac", music, tags=False)
    chime = write_wav(tmp_path / "chime.wav", voice)
    async with RaopEmulator() as emu_a, RaopEmulator() as emu_b:
        a, b = f"127.0.0.1:{emu_a.port}", f"127.0.0.1:{emu_b.port}"
        code, out, err = await run_cli(
            "play", str(track), "--player", a, "--player", b, "--announce", str(chime),
            "--announce-at", "2.5", "--interface", "127.0.0.1", tmp_path=tmp_path,
        )  # fmt: skip
        assert code == 0, out + err
        assert "announcement at 0:02.5" in out
        expected = expected_mix(music, voice, round(2.5 * RATE))
        for emu in (emu_a, emu_b):
            body = emu.stream.reconstructed_pcm()[PREROLL_FRAMES * 4 :]
            assert body[: len(expected)] == expected  # every sample, FLAC/WAV → f32 → s16 → mix
        shift = (sample0_ntp(emu_b) - sample0_ntp(emu_a)) / FRAME_NTP
        assert abs(shift) <= 1.0  # one timeline: the same frame at the same instant


async def test_announce_errors_are_clear_and_start_nothing(tmp_path: Path) -> None:
    track = write_track(tmp_path / "track.flac", test_signal(1.0, seed=73), tags=False)
    async with RaopEmulator() as emu:
        player = f"127.0.0.1:{emu.port}"
        missing = str(tmp_path / "missing.wav")
        code, _, err = await run_cli(
            "play", str(track), "--player", player, "--announce", missing, tmp_path=tmp_path
        )
        assert code == 1
        assert err.startswith("error: ")
        assert missing in err
        code, _, err = await run_cli(
            "play", str(track), "--player", player, "--announce-at", "1", tmp_path=tmp_path
        )
        assert code == 2
        assert "--announce-at needs --announce" in err
        code, _, err = await run_cli(
            "play", str(track), "--player", player, "--announce", "-", tmp_path=tmp_path
        )
        assert code == 2
        assert "not stdin" in err
        code, _, err = await run_cli(
            "play", str(track), "--player", player, "--announce", str(track),
            "--announce-at", "-1", tmp_path=tmp_path,
        )  # fmt: skip
        assert code == 2
        assert "--announce-at: expected seconds ≥ 0, got '-1'" in err
        assert emu.core.requests == []  # nobody ever connected
