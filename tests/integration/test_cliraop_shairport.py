"""bin/cliraop against Debian's real shairport-sync 3.3.8 on loopback: audio compared sample by
sample with what was sent (±2 LSB)."""

from __future__ import annotations

import asyncio
import math
from array import array

import pytest

from tests.audio import assert_audio_delivered, compare_audio, find_offset, music_like, test_signal
from tests.receivers.packet_loss import drop_udp_packets
from tests.receivers.shairport import StartShairport
from tests.streamer_driver import ntp_in, run_cliraop

pytestmark = pytest.mark.receiver

SIGNAL_5S = test_signal(5.0, seed=11)


async def test_plain_stream_arrives_complete(start_shairport: StartShairport) -> None:
    receiver = await start_shairport("plain")
    run = await run_cliraop(receiver.port, SIGNAL_5S, lead_s=1.0, args=["-volume", "50"])
    assert run.returncode == 0, run.log
    started = run.status("started")
    assert started["actual_ntp"] == started["requested_ntp"]
    assert started["skipped_frames"] == "0"
    assert run.status("volume")["value"] == "50"
    assert run.status("exit")["code"] == "0"
    comparison = assert_audio_delivered(await receiver.settled_output(), SIGNAL_5S)
    assert comparison.frames_compared == len(SIGNAL_5S) // 4


async def test_encrypted_stream_arrives_complete(start_shairport: StartShairport) -> None:
    receiver = await start_shairport("crypt")
    run = await run_cliraop(receiver.port, SIGNAL_5S, args=["-encrypt", "-et", "0,1"])
    assert run.returncode == 0, run.log
    assert run.status("connected")["encrypted"] == "true"
    assert_audio_delivered(await receiver.settled_output(), SIGNAL_5S)


async def test_compressed_encrypted_stream_arrives_complete(
    start_shairport: StartShairport,
) -> None:
    # -alac as Music Assistant passes it by default: shairport-sync 3.3.8 decodes our compressed
    # frames (its own ALAC decoder), AES-CBC over their variable length; ±2 LSB is its dither.
    receiver = await start_shairport("alac")
    signal = music_like(4.0, seed=14, peak=0.9)
    run = await run_cliraop(receiver.port, signal, args=["-alac", "-encrypt", "-et", "0,1"])
    assert run.returncode == 0, run.log
    stats = run.all("stats")[-1]
    assert int(stats["compressed"]) == int(stats["sent"])
    assert int(stats["payload_bytes"]) < 0.7 * 1412 * int(stats["sent"])
    comparison = assert_audio_delivered(await receiver.settled_output(), signal)
    assert comparison.frames_compared == len(signal) // 4


async def test_password_protected_receiver(start_shairport: StartShairport) -> None:
    receiver = await start_shairport("locked", password="s3cret pass")
    run = await run_cliraop(receiver.port, SIGNAL_5S, args=["-password", "s3cret pass"])
    assert run.returncode == 0, run.log
    assert "s3cret" not in run.log  # never logged
    assert_audio_delivered(await receiver.settled_output(), SIGNAL_5S)

    wrong = await run_cliraop(receiver.port, SIGNAL_5S[:44100], args=["-password", "nope"])
    assert wrong.returncode == 1
    assert wrong.status("error")["code"] == "auth_failed"
    missing = await run_cliraop(receiver.port, SIGNAL_5S[:44100])
    assert missing.returncode == 1
    assert missing.status("error")["code"] == "password_required"


async def test_five_percent_loss_is_healed_by_resends(start_shairport: StartShairport) -> None:
    receiver = await start_shairport("lossy")
    audio_port = receiver.udp_port_base + 2  # shairport-sync: control, timing, audio
    with drop_udp_packets(audio_port, 0.05):
        run = await run_cliraop(receiver.port, SIGNAL_5S, lead_s=1.0)
    assert run.returncode == 0, run.log
    stats = run.all("stats")[-1]
    assert int(stats["resent"]) > 10  # ~60 of 1270 packets dropped on the way in
    assert_audio_delivered(await receiver.settled_output(), SIGNAL_5S)


async def test_pause_then_resume_loses_nothing(start_shairport: StartShairport) -> None:
    receiver = await start_shairport("pause")
    signal = test_signal(6.0, seed=12)
    run = await run_cliraop(
        receiver.port,
        signal,
        commands=[("started", 2.5, "ACTION=PAUSE"), ("paused", 1.0, "ACTION=PLAY")],
    )
    assert run.returncode == 0, run.log
    resume_sample = int(run.status("paused")["sample"])
    playing = run.all("playing")
    assert len(playing) == 2
    assert int(playing[1]["first_sample"]) == resume_sample
    assert playing[1]["actual_ntp"] == playing[1]["requested_ntp"]
    received = await receiver.settled_output()
    # Everything up to the pause point played before the pause ...
    head = compare_audio(received, signal[: resume_sample * 4])
    assert head.ok, head
    # ... and everything from it after the resume: nothing lost, nothing out of order. The
    # receiver's file may also hold a little audio past the pause point from before the flush
    # (its stdout backend writes 0.2 s ahead), so the resumed part is located from the end.
    last_two_s = find_offset(received, signal[-2 * 44100 * 4 :])
    resumed_at = last_two_s - (len(signal) // 4 - resume_sample - 2 * 44100)
    assert resumed_at > head.offset_frames + resume_sample - 44100
    tail = compare_audio(received[resumed_at * 4 :], signal[resume_sample * 4 :])
    assert tail.ok, tail
    assert tail.offset_frames == 0


def _rms_db(pcm: bytes) -> float:
    samples = array("h", pcm)
    return 10 * math.log10(sum(v * v for v in samples) / max(1, len(samples)) + 1e-9)


async def test_volume_change_is_applied(start_shairport: StartShairport) -> None:
    receiver = await start_shairport("volume", ignore_volume=False)
    signal = test_signal(6.0, seed=13)
    run = await run_cliraop(
        receiver.port,
        signal,
        args=["-volume", "100"],
        commands=[("started", 2.5, "VOLUME=30")],
    )
    assert run.returncode == 0, run.log
    assert [s["value"] for s in run.all("volume")] == ["100", "30"]
    received = await receiver.settled_output()
    start = find_offset(received, signal[: 44100 * 4])  # at volume 100 the audio is unscaled
    second = 44100 * 4

    def window(from_s: float, to_s: float) -> bytes:
        return received[start * 4 + int(from_s * second) : start * 4 + int(to_s * second)]

    loud, quiet = window(0.5, 2.0), window(4.5, 5.5)
    assert _rms_db(loud) - _rms_db(quiet) > 10  # -21 dB requested; shairport maps it further


async def test_two_receivers_with_one_start_instant(start_shairport: StartShairport) -> None:
    first, second = await start_shairport("room1"), await start_shairport("room2")
    start = ntp_in(2.0)  # two cold streamers + the timing wait, with room for a loaded machine
    runs = await asyncio.gather(
        run_cliraop(first.port, SIGNAL_5S, ntpstart=start),
        run_cliraop(second.port, SIGNAL_5S, ntpstart=start),
    )
    for run in runs:
        assert run.returncode == 0, run.log
        started = run.status("started")
        assert int(started["actual_ntp"]) == start  # both scheduled on the same instant
        assert started["skipped_frames"] == "0"
    for receiver in (first, second):
        assert_audio_delivered(await receiver.settled_output(), SIGNAL_5S)
