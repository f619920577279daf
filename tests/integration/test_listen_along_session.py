"""Listen along on a StreamSession in this process: the listener follows the rooms' timeline
(nothing is sent while the session is paused) and still gets every sample exactly once."""

from __future__ import annotations

import asyncio
import time

from airplay_provider.listen_along import ListenAlongServer
from airplay_provider.protocol.rtp_l16 import s16be_to_le
from airplay_provider.session import SessionState, StreamSession
from tests.audio import test_signal
from tests.group_helpers import flow_source, raop_target
from tests.receivers.raop_emulator import RaopEmulator
from tests.rtsp_listener import rtsp_play_client

RATE = 44100


async def read_rtp(
    reader: asyncio.StreamReader, arrivals: list[tuple[float, int]], pcm: bytearray
) -> None:
    """Interleaved RTP until the server ends the stream: (arrival, frames) and the PCM."""
    while True:
        try:
            head = await asyncio.wait_for(reader.readexactly(4), 30)
        except asyncio.IncompleteReadError:
            return
        assert head[:2] == b"$\x00"
        packet = await reader.readexactly(int.from_bytes(head[2:4], "big"))
        payload = packet[12:]
        arrivals.append((time.monotonic(), len(payload) // 4))
        pcm += s16be_to_le(payload)


async def test_a_listener_waits_out_a_pause_and_misses_no_sample() -> None:
    signal = test_signal(7.0, seed=64)
    async with RaopEmulator() as emu:
        server = ListenAlongServer("127.0.0.1", 0)
        await server.start()
        session = StreamSession(flow_source(signal, chunk_seconds=1.0))
        try:
            await session.start([raop_target("room", emu.port)])
            server.add("/room", session)
            reader, writer = await rtsp_play_client(server.url("/room"))
            arrivals: list[tuple[float, int]] = []
            heard = bytearray()
            reading = asyncio.create_task(read_rtp(reader, arrivals, heard))
            await asyncio.sleep(1.5)
            await session.pause()
            assert session.state is SessionState.PAUSED
            paused_at = time.monotonic()
            await asyncio.sleep(1.5)
            resumed_at = time.monotonic()
            await session.resume()
            assert await session.wait_ended(20)
            await asyncio.wait_for(reading, 10)  # the server ends the stream after the last frame
            writer.close()
        finally:
            await session.stop()
            await server.close()
    # While paused, at most what was already due (0.1 s early, one packet) went out.
    during = sum(f for t, f in arrivals if paused_at + 0.15 < t < resumed_at)
    assert during == 0, f"{during} frames sent while paused"
    assert sum(f for t, f in arrivals if t >= resumed_at) > RATE  # ... and it went on after
    # Every sample from where it joined to the end, exactly once, in order.
    at = signal.find(bytes(heard[:4096]))
    assert at >= 0
    assert at % 4 == 0
    assert bytes(heard) == signal[at:]
    assert len(heard) >= 4 * RATE * 4
