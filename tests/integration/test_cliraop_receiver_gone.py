"""bin/cliraop notices a receiver gone mid-stream within a second, by either sign alone (its
RTSP connection closed, or ICMP port unreachable for the audio), reports `[STATUS] error
code=receiver_gone` and exits 1; a pause (the receiver flushes) is no false alarm."""

from __future__ import annotations

import asyncio

import pytest

from airplay_provider.protocol.liveness import PORT_CLOSED, RTSP_CLOSED, RTSP_RESET
from tests.audio import test_signal
from tests.receivers.raop_emulator import RaopEmulator
from tests.streamer_driver import run_cliraop


@pytest.mark.parametrize(
    ("rtsp", "udp", "messages"),
    [
        (True, False, {RTSP_CLOSED, RTSP_RESET}),
        (False, True, {PORT_CLOSED}),
        (True, True, {RTSP_CLOSED, RTSP_RESET, PORT_CLOSED}),
    ],
    ids=["rtsp-closed", "audio-port-closed", "both"],
)
async def test_a_receiver_gone_is_reported_within_a_second(
    rtsp: bool, udp: bool, messages: set[str]
) -> None:
    pcm = test_signal(8.0, seed=61)
    loop = asyncio.get_running_loop()
    async with RaopEmulator() as emu:
        running = asyncio.create_task(run_cliraop(emu.port, pcm, lead_s=0.6, timeout=30))
        await emu.wait_for(lambda core: len(core.stream.audio_packets) > 200, 10)
        killed = loop.time()
        emu.kill(rtsp=rtsp, udp=udp)
        run = await running
        exited_s = loop.time() - killed
    error = run.status("error")
    assert error["code"] == "receiver_gone", run.log
    assert error["message"] in messages
    assert run.returncode == 1
    assert exited_s < 1.0, f"exited {exited_s:.2f} s after the kill"
    assert run.all("stopped") == []  # no clean-end report


async def test_a_receiver_gone_while_paused_is_reported_within_a_second() -> None:
    """Paused, the loop sends nothing and has no packet to wake for: it still watches RTSP."""
    pcm = test_signal(8.0, seed=62)
    loop = asyncio.get_running_loop()
    async with RaopEmulator() as emu:
        running = asyncio.create_task(
            run_cliraop(
                emu.port,
                pcm,
                lead_s=0.6,
                timeout=30,
                commands=[("started", 0.5, "ACTION=PAUSE")],
            )
        )
        await emu.wait_for(lambda core: len(core.flushes) == 1, 10)
        await asyncio.sleep(0.6)  # well into the pause
        killed = loop.time()
        emu.kill(rtsp=True, udp=False)
        run = await running
        exited_s = loop.time() - killed
    assert run.all("paused"), run.log
    error = run.status("error")
    assert error["code"] == "receiver_gone", run.log
    assert error["message"] in {RTSP_CLOSED, RTSP_RESET}
    assert run.returncode == 1
    assert exited_s < 1.0, f"exited {exited_s:.2f} s after the kill"
