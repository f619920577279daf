"""`airplay-provider play` as a person meets it: stopped by a signal, a receiver that refuses,
a name typed in part, a receiver announcing an address where nothing listens. Subprocesses
against RAOP emulators (loopback), found by mDNS on loopback where a name is given."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from tests.audio import test_signal
from tests.integration.test_cli_signals import alive, descendants
from tests.integration.test_play_cli import write_track
from tests.receivers.raop_emulator import RaopEmulator

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "airplay_provider.host.cli"]
HOST = "127.0.0.1"
RAOP = "_raop._tcp.local."
NOISE = ("Traceback", "Exception ignored", "Unknown child process", "Event loop is closed")


def env_for(tmp_path: Path) -> dict[str, str]:
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    return {
        **os.environ,
        "TMPDIR": str(temp),
        "PYTHONPATH": str(ROOT),
        "AIRPLAY_PROVIDER_CONFIG": str(tmp_path / "config.json"),
    }


def left_in_tmp(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in os.scandir(tmp_path / "tmp"))


async def run(*args: str, tmp_path: Path, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL, env=env_for(tmp_path),
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def refused_port() -> int:
    """A loopback TCP port where nothing listens (connecting to it is refused)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
async def test_a_signal_stops_play_silently_reports_the_position_and_leaves_nothing(
    tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    track = write_track(tmp_path / "track.flac", test_signal(20.0, seed=61))  # tags and cover
    async with RaopEmulator() as emu:
        proc = await asyncio.create_subprocess_exec(
            *CLI, "play", str(track), "--player", f"{HOST}:{emu.port}", "--interface", HOST,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL, env=env_for(tmp_path),
        )  # fmt: skip
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(30):
                while not (await proc.stdout.readline()).startswith(b"playing"):
                    pass
            playing_at = time.monotonic()
            await emu.wait_for(lambda core: core.artwork != [], 10)  # cover.png exists now
            await asyncio.sleep(max(0.0, playing_at + 3.0 - time.monotonic()))
            children = descendants(proc.pid)
            assert len(children) >= 3  # the fork server, the streamer it forked, ffmpeg
            proc.send_signal(signum)
            signalled_at = time.monotonic()
            rest, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert emu.core.teardown_at is not None  # the receiver was hung up on
    assert proc.returncode == code, err.decode()
    for noise in NOISE:
        assert noise not in err.decode()
    stopped = re.search(r"^stopped at (\d+):(\d\d\.\d)$", rest.decode(), re.MULTILINE)
    assert stopped is not None, rest.decode()
    position = int(stopped[1]) * 60 + float(stopped[2])
    # the playback position (behind the wall time since "playing" by the receiver latency)
    assert 1.0 <= position <= signalled_at - playing_at
    assert "stopped after" not in rest.decode()
    assert [pid for pid in children if alive(pid)] == []
    assert left_in_tmp(tmp_path) == []  # no cover.png, no session FIFOs


async def announce(zeroconf: AsyncZeroconf, name: str, port: int, addresses: list[str]) -> str:
    """A plain RAOP receiver `name` at `addresses` (in that order); its player id."""
    mac = "02" + secrets.token_hex(5).upper()  # locally administered: never a real vendor
    info = AsyncServiceInfo(
        RAOP,
        f"{mac}@{name}.{RAOP}",
        port=port,
        properties={"am": "AirPort10,115", "et": "0", "md": "0,1,2", "cn": "0,1", "tp": "UDP"},
        server=f"{name.lower().replace(' ', '-')}.local.",
        parsed_addresses=addresses,
    )
    await asyncio.wait_for(await zeroconf.async_register_service(info), 10.0)
    return "ap" + mac.lower()


async def test_a_receiver_announced_first_where_nothing_listens_is_reached_on_its_other_address(
    tmp_path: Path, zeroconf: AsyncZeroconf
) -> None:
    tag = secrets.token_hex(2)
    pcm = test_signal(1.5, seed=62)
    track = write_track(tmp_path / "t.flac", pcm, tags=False)
    async with RaopEmulator(host="::1") as emu:  # listens on ::1 only
        # IPv4 comes first by the address rule; nothing listens on 127.0.0.2: it refuses
        await announce(zeroconf, f"Hall {tag}", emu.port, ["::1", "127.0.0.2"])
        code, out, err = await run(
            "play", str(track), "--player", f"Hall {tag}", "--interface", HOST, tmp_path=tmp_path
        )
        assert code == 0, out + err
        assert "done: 1 of 1 player(s) played to the end" in out
        body = emu.stream.reconstructed_pcm()
        assert pcm[:44100] in body  # the audio arrived, bit-exact
    assert left_in_tmp(tmp_path) == []


async def test_a_part_of_a_name_finds_the_player_and_a_refusing_one_is_one_line_and_exit_3(
    tmp_path: Path, zeroconf: AsyncZeroconf
) -> None:
    tag = secrets.token_hex(2)
    port = refused_port()
    track = write_track(tmp_path / "t.flac", test_signal(1.5, seed=63), tags=False)
    async with RaopEmulator() as emu:
        await announce(zeroconf, f"Kitchen {tag}", emu.port, [HOST])
        den_id = await announce(zeroconf, f"Den {tag}", port, [HOST])
        code, out, err = await run(
            "play", str(track), "--player", f"itchen {tag.upper()}", "--player", f"den {tag}",
            "--interface", HOST, tmp_path=tmp_path,
        )  # fmt: skip
        assert emu.stream.audio_packets  # "itchen" found Kitchen and it played
    assert code == 3, out + err
    assert "done: 1 of 2 player(s) played to the end" in out
    both = out + err
    refusals = [line for line in both.splitlines() if "refused" in line]
    assert refusals == [f"Den {tag} failed: {HOST}:{port} refused the connection"]
    assert den_id not in both  # the name, never the internal id
    for noise in NOISE:
        assert noise not in both
    assert left_in_tmp(tmp_path) == []


async def test_ambiguous_names_list_the_candidates_and_pair_uses_the_same_rule(
    tmp_path: Path, zeroconf: AsyncZeroconf
) -> None:
    tag = secrets.token_hex(2)
    port = refused_port()
    await announce(zeroconf, f"Office {tag} Left", port, [HOST])
    await announce(zeroconf, f"Office {tag} Right", port, [HOST])
    net = ("--interface", HOST)
    code, out, err = await run("play", "-", "--player", f"office {tag}", *net, tmp_path=tmp_path)
    assert code == 2, out + err
    assert f"'office {tag}' is ambiguous: it matches Office {tag} Left (ap" in err
    assert f"Office {tag} Right (ap" in err
    # `pair` finds a receiver by a part of its name too (this one needs no pairing)
    code, out, err = await run("pair", f"{tag} righ", *net, "--timeout", "5", tmp_path=tmp_path)
    assert (code, err) == (0, "")
    assert f"Office {tag} Right needs no pairing" in out
