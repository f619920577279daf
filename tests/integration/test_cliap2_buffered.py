"""`bin/cliap2` buffered audio (stream type 103) against the strict AirPlay 2 emulator (NTP).

The emulator takes the TCP data connection, checks every packet's nonce and sequence, refuses
the anchor until it has measured our clock, and keeps each packet's arrival time: a packet that
arrives after its anchored play time counts as late (lost, for a listener).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from tests.audio import assert_audio_delivered, music_like, test_signal
from tests.receivers.ap2_buffered import BufferedStream
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_segment import Segment
from tests.receivers.ap2_sender import NO_PTP_FEATURES, Cliap2, ntp_in
from tests.receivers.ap2_stream import Ap2StreamSession

FRAME_NS = 1e9 / 44100
BUFFERED_FEATURES = NO_PTP_FEATURES | (1 << 40)
NOT_APPLE = "Speaker1,1"


def _session(receiver: Ap2Receiver) -> Ap2StreamSession:
    assert receiver.session is not None
    return receiver.session


def _buffered(receiver: Ap2Receiver) -> BufferedStream:
    buffered = _session(receiver).buffered
    assert buffered is not None
    return buffered


def _sample0_time_ns(segment: Segment, sent: bytes) -> float:
    """Anchored play time of the first frame of `sent`, located in the segment's audio."""
    comparison = assert_audio_delivered(segment.pcm(), sent, tolerance_lsb=0)
    assert segment.first_rtp is not None
    return segment.scheduled_ns((segment.first_rtp + comparison.offset_frames) & 0xFFFFFFFF)


async def test_auto_streams_buffered_bit_exact_and_on_time() -> None:
    signal = test_signal(2.0, seed=11)
    async with Ap2Receiver(features=BUFFERED_FEATURES, model=NOT_APPLE) as receiver:
        start_unix, start_ntp = ntp_in(2.0)
        run = await Cliap2.start(address="127.0.0.1", port=receiver.port, ntpstart=start_ntp)
        await run.feed(signal)
        assert await run.finish() == 0, run.text()
        session, buffered = _session(receiver), _buffered(receiver)
        assert session.errors == []
        started = run.status("started")[0]
        assert started["stream_type"] == "buffered"
        assert (started["codec"], started["bits"], started["rate"]) == ("pcm-escape", "16", "44100")
        assert started["actual_ntp"] == started["requested_ntp"] == str(start_ntp)
        assert session.stream_types == [103]  # and no latencyMin/Max (else an error above)
        # the emulator said 400 until it had 3 clock samples; we retried until it took it
        assert buffered.anchor_refusals >= 1
        assert run.status("waiting")[0]["reason"] == "receiver_clock"
        (segment,) = session.segments
        assert len(segment.anchors) == 1
        assert abs(_sample0_time_ns(segment, signal) - start_unix) <= FRAME_NS
        assert buffered.late_frames(segment) == 0
        assert segment.missing_frames() == 0
        assert session.sync_source is None  # no sync packets
        assert session.teardowns == ["stream", "session"]


async def test_compressed_alac_over_buffered_is_bit_exact() -> None:
    signal = music_like(2.0, seed=13)
    async with Ap2Receiver(features=BUFFERED_FEATURES, model=NOT_APPLE) as receiver:
        start_unix, start_ntp = ntp_in(2.0)
        run = await Cliap2.start(
            address="127.0.0.1", port=receiver.port, ntpstart=start_ntp, extra=["--alac", "on"]
        )
        await run.feed(signal)
        assert await run.finish() == 0, run.text()
        session, buffered = _session(receiver), _buffered(receiver)
        assert session.stream_types == [103]
        assert run.status("started")[0]["codec"] == "alac"
        stats = run.status("stats")[-1]
        assert int(stats["compressed"]) == int(stats["sent"])  # every frame compressed ...
        (segment,) = session.segments
        assert abs(_sample0_time_ns(segment, signal) - start_unix) <= FRAME_NS  # ... decoded
        assert segment.missing_frames() == 0
        assert buffered.late_frames(segment) == 0


async def test_auto_keeps_realtime_for_apple_models_and_honours_the_override() -> None:
    async with Ap2Receiver(features=BUFFERED_FEATURES, model="AudioAccessory5,1") as apple:
        run = await Cliap2.start(address="127.0.0.1", port=apple.port)
        await run.feed(test_signal(0.3))
        assert await run.finish() == 0, run.text()
        assert run.status("started")[0]["stream_type"] == "realtime"
        assert _session(apple).stream_types == [96]
    async with Ap2Receiver(features=BUFFERED_FEATURES, model=NOT_APPLE) as other:
        extra = ["--stream-type", "realtime"]
        run = await Cliap2.start(address="127.0.0.1", port=other.port, extra=extra)
        await run.feed(test_signal(0.3))
        assert await run.finish() == 0, run.text()
        assert _session(other).stream_types == [96]
        assert _session(other).errors == []


async def test_three_second_blackout_loses_nothing() -> None:
    signal = test_signal(7.0, seed=12)
    async with Ap2Receiver(features=BUFFERED_FEATURES, model=NOT_APPLE) as receiver:
        start_unix, start_ntp = ntp_in(1.5)
        run = await Cliap2.start(address="127.0.0.1", port=receiver.port, ntpstart=start_ntp)
        await run.feed(signal)
        await _played_for(run, 1500)  # the lead has grown past 4 s
        receiver.blackout(3.0)
        assert await run.finish(wait_s=30.0) == 0, run.text()
        session, buffered = _session(receiver), _buffered(receiver)
        assert session.errors == []
        assert max(buffered.gaps_ns) >= 2.9e9  # the link really was dark for 3 s
        (segment,) = session.segments
        assert abs(_sample0_time_ns(segment, signal) - start_unix) <= FRAME_NS
        assert segment.missing_frames() == 0
        assert buffered.late_frames(segment) == 0


async def test_pause_and_resume_by_rate_and_flushbuffered(tmp_path: Path) -> None:
    signal = test_signal(6.0, seed=13)
    async with Ap2Receiver(features=BUFFERED_FEATURES, model=NOT_APPLE) as receiver:
        _, start_ntp = ntp_in(1.5)
        fifo = tmp_path / "cmd"
        run = await Cliap2.start(
            address="127.0.0.1", port=receiver.port, ntpstart=start_ntp, fifo=fifo
        )
        await run.feed(signal, close=False)
        # pause once the start is anchored
        paused, resume_unix = await pause_and_resume(
            run, lambda: bool(_buffered(receiver).rates), 1.0
        )
        assert await run.finish(wait_s=30.0) == 0, run.text()
        session, buffered = _session(receiver), _buffered(receiver)
        assert session.errors == []
        assert buffered.rates == [1, 0, 1]  # anchor, pause, resume
        before, after = session.segments
        assert len(before.anchors) == len(after.anchors) == 1
        # what played before the pause, then the rest from the resume on: the whole signal
        resumed_at = int(paused["sample"])
        heard = assert_audio_delivered(before.pcm(), signal[: resumed_at * 4], tolerance_lsb=0)
        played = buffered.played_frames(before, buffered.paused_at_ns[0]) - heard.offset_frames
        assert 0 <= played - resumed_at <= 4410  # < 0.1 s heard twice, nothing skipped
        rest = signal[resumed_at * 4 :]
        assert abs(_sample0_time_ns(after, rest) - resume_unix) <= FRAME_NS
        assert buffered.late_frames(before) == buffered.late_frames(after) == 0


async def _played_for(run: Cliap2, ms: int, wait_s: float = 10.0) -> None:
    """Wait until the streamer reports `ms` milliseconds played."""
    async with asyncio.timeout(wait_s):
        while not any(int(fields["ms"]) >= ms for fields in run.status("elapsed")):
            await run.wait_status("elapsed")
            await asyncio.sleep(0.1)


async def test_held_at_connect_like_a_group_member_then_played(tmp_path: Path) -> None:
    """The session spawns members on a far instant, pauses them once connected, then plays all
    at one instant: the anchor still being refused at the pause must not come back later."""
    signal = test_signal(1.5, seed=14)
    async with Ap2Receiver(features=BUFFERED_FEATURES, model=NOT_APPLE) as receiver:
        _, far_ntp = ntp_in(60.0)
        fifo = tmp_path / "cmd"
        run = await Cliap2.start(
            address="127.0.0.1", port=receiver.port, ntpstart=far_ntp, fifo=fifo
        )
        await run.wait_status("connected")
        run.command("ACTION=PAUSE")
        await run.wait_status("paused")
        start_unix, start_ntp = ntp_in(1.5)
        run.command(f"NTPSTART={start_ntp}")
        run.command("ACTION=PLAY")
        await run.feed(signal)
        assert await run.finish(wait_s=30.0) == 0, run.text()
        session, buffered = _session(receiver), _buffered(receiver)
        assert session.errors == []
        assert buffered.rates[-2:] == [0, 1]
        held, played = session.segments
        assert held.packets == {}  # nothing was sent 60 s ahead
        assert len(played.anchors) == 1  # only the PLAY's anchor
        assert abs(_sample0_time_ns(played, signal) - start_unix) <= FRAME_NS
        assert buffered.late_frames(played) == 0


async def test_buffered_and_realtime_members_agree_within_one_frame() -> None:
    signal = test_signal(1.5, seed=15)
    async with (
        Ap2Receiver(features=BUFFERED_FEATURES, model=NOT_APPLE) as buffered_rx,
        Ap2Receiver(features=NO_PTP_FEATURES) as realtime_rx,
    ):
        _, start_ntp = ntp_in(2.5)  # two cold streamers, started one after the other
        runs = [
            await Cliap2.start(address="127.0.0.1", port=rx.port, ntpstart=start_ntp)
            for rx in (buffered_rx, realtime_rx)
        ]
        await asyncio.gather(*(run.feed(signal) for run in runs))
        assert [await run.finish() for run in runs] == [0, 0]
        assert [run.status("started")[0]["stream_type"] for run in runs] == ["buffered", "realtime"]
        times = [
            _sample0_time_ns(_session(rx).segments[0], signal) for rx in (buffered_rx, realtime_rx)
        ]
        assert abs(times[0] - times[1]) <= FRAME_NS
        assert _buffered(buffered_rx).late_frames(_session(buffered_rx).segments[0]) == 0


async def test_flush_keeps_the_session_and_plays_the_next_track_soon(tmp_path: Path) -> None:
    first_track, second_track = test_signal(4.0, seed=16), test_signal(1.5, seed=17)
    async with Ap2Receiver(features=BUFFERED_FEATURES, model=NOT_APPLE) as receiver:
        _, start_ntp = ntp_in(1.5)
        fifo = tmp_path / "cmd"
        run = await Cliap2.start(
            address="127.0.0.1", port=receiver.port, ntpstart=start_ntp, fifo=fifo
        )
        await run.feed(first_track, close=False)
        await run.wait_status("elapsed", wait_s=5.0)
        await _until(lambda: bool(_buffered(receiver).rates))  # the start is anchored
        flush_unix, _ = ntp_in(0.0)
        run.command("ACTION=FLUSH")
        await run.wait_status("flushed")
        await run.feed(second_track)
        assert await run.finish(wait_s=30.0) == 0, run.text()
        session, buffered = _session(receiver), _buffered(receiver)
        assert session.errors == []
        assert (session.session_setups, session.stream_setups) == (1, 1)  # warm: no new SETUP
        assert buffered.rates == [1, 0, 1]
        _, after = session.segments
        restart_ns = _sample0_time_ns(after, second_track) - flush_unix
        assert 0 < restart_ns < 1e9
        assert buffered.late_frames(after) == 0


async def test_a_closed_data_connection_is_a_receiver_gone() -> None:
    loop = asyncio.get_running_loop()
    async with Ap2Receiver(features=BUFFERED_FEATURES, model=NOT_APPLE) as receiver:
        _, start_ntp = ntp_in(1.0)
        run = await Cliap2.start(address="127.0.0.1", port=receiver.port, ntpstart=start_ntp)
        feeding = asyncio.create_task(run.feed(test_signal(8.0)))
        await run.wait_status("started")
        await _until(lambda: session_packets(receiver) > 0)  # the emulator took the connection
        gone = loop.time()
        receiver.close_buffered()
        code = await run.finish(10.0)
        exited_s = loop.time() - gone
        feeding.cancel()
    (error,) = run.status("error")
    assert error["code"] == "receiver_gone", run.text()
    assert "buffered audio connection" in error["message"]
    assert code == 1
    assert exited_s < 1.0, f"exited {exited_s:.2f} s after the data connection closed"


async def _until(condition: Callable[[], bool], wait_s: float = 10.0) -> None:
    """Wait (bounded) until `condition()` holds (the emulator runs in this event loop)."""
    async with asyncio.timeout(wait_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def pause_and_resume(
    run: Cliap2, anchored: Callable[[], bool], resume_in_s: float
) -> tuple[dict[str, str], int]:
    """Once `run` plays and `anchored()` holds, pause it, resume it `resume_in_s` from then and
    end its input: the `paused` status and the resume instant (Unix ns)."""
    await run.wait_status("elapsed", wait_s=5.0)
    await _until(anchored)
    run.command("ACTION=PAUSE")
    paused = await run.wait_status("paused")
    resume_unix, resume_ntp = ntp_in(resume_in_s)
    run.command(f"NTPSTART={resume_ntp}")
    run.command("ACTION=PLAY")
    await run.wait_status("playing", wait_s=5.0)
    await run.feed(b"")
    return paused, resume_unix


def session_packets(receiver: Ap2Receiver) -> int:
    """Buffered packets the emulator has decrypted so far."""
    buffered = _session(receiver).buffered
    return 0 if buffered is None else buffered.packets
