"""`airplay-provider play` on two receivers, one killed mid-track: its line in the progress
output says `failed (receiver gone)` within a second and that it is rejoining; the other
plays to the end (issue 14)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.audio import test_signal
from tests.integration.test_play_cli import PREROLL_FRAMES, ROOT, write_track
from tests.receivers.raop_emulator import RaopEmulator


async def test_a_killed_receiver_shows_as_failed_within_a_second(tmp_path: Path) -> None:
    pcm = test_signal(5.0, seed=81)
    track = write_track(tmp_path / "track.flac", pcm, tags=False)
    loop = asyncio.get_running_loop()
    env = {**os.environ, "AIRPLAY_PROVIDER_CONFIG": str(tmp_path / "config.json")}
    async with RaopEmulator() as emu_a, RaopEmulator() as emu_b:
        a, b = f"127.0.0.1:{emu_a.port}", f"127.0.0.1:{emu_b.port}"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airplay_provider.host.cli", "play", str(track),
            "--player", a, "--player", b, "--interface", "127.0.0.1",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=env,
        )  # fmt: skip
        assert proc.stdout is not None
        assert proc.stderr is not None
        lines: list[tuple[float, str]] = []
        killed: float | None = None
        try:
            async with asyncio.timeout(40):
                async for raw in proc.stdout:
                    line = raw.decode().rstrip("\n")
                    lines.append((loop.time(), line))
                    playing = sum(f"{b}: playing" in text for _, text in lines)
                    if killed is None and playing == 2:  # a second into the track
                        emu_b.kill()
                        killed = loop.time()
                await proc.wait()
            err = (await proc.stderr.read()).decode()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await emu_b.close()
        out = "\n".join(text for _, text in lines)
        assert killed is not None, out + err
        shown = [t for t, text in lines if f"{b}: failed (receiver gone)" in text]
        assert shown, out
        assert shown[0] - killed < 1.0, f"shown {shown[0] - killed:.2f} s after the kill\n{out}"
        assert any("rejoining in" in text for _, text in lines), out
        assert f"{b} failed: receiver gone" in out  # one line names the player and the cause
        assert "done: 1 of 2 player(s) played to the end" in out
        got = emu_a.stream.reconstructed_pcm()[PREROLL_FRAMES * 4 :]
        assert got[: len(pcm)] == pcm  # the other receiver kept every frame
