"""`bin/cliap2` end to end against the AirPlay 2 emulator on loopback (NTP timing).

PTP needs UDP 319/320 on both sides, so PTP runs are in test_cliap2_ptp.py (namespaces).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from airplay_provider.protocol.hap.credentials import HapCredentials
from tests.audio import assert_audio_delivered, test_signal
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_segment import Segment
from tests.receivers.ap2_sender import NO_PTP_FEATURES, Cliap2, ntp_in
from tests.receivers.ap2_stream import Ap2StreamSession

FRAME_NS = 1e9 / 44100
PAIRING_ID = "00112233AABBCCDD"


@pytest.fixture
async def receiver() -> AsyncIterator[Ap2Receiver]:
    options = {"record_before_stream": True, "drop_rate": 0.05, "drop_seed": 3}
    async with Ap2Receiver(features=NO_PTP_FEATURES, session_options=options) as running:
        yield running


def _session(receiver: Ap2Receiver) -> Ap2StreamSession:
    assert receiver.session is not None
    return receiver.session


def _sample0_time_ns(segment: Segment, sent: bytes) -> float:
    """Sender-timeline instant of the first frame of `sent`, located in the segment's audio."""
    comparison = assert_audio_delivered(segment.pcm(), sent, tolerance_lsb=0)
    assert segment.first_rtp is not None
    return segment.scheduled_ns((segment.first_rtp + comparison.offset_frames) & 0xFFFFFFFF)


async def test_stream_is_bit_exact_on_time_with_loss_healed(receiver: Ap2Receiver) -> None:
    signal = test_signal(2.0)
    start_unix, start_ntp = ntp_in(1.2)
    run = await Cliap2.start(
        address="127.0.0.1",
        port=receiver.port,
        ntpstart=start_ntp,
        extra=["--volume", "40", "--alac"],
    )
    await run.feed(signal)
    assert await run.finish() == 0, run.text()
    session = _session(receiver)
    connected = run.status("connected")[0]
    assert (connected["timing"], connected["pairing"]) == ("ntp", "transient")
    started = run.status("started")[0]
    assert started["actual_ntp"] == started["requested_ntp"] == str(start_ntp)
    # every sync packet sits on one anchor line, and sample 0 plays at --ntpstart ± 1 frame
    segment = session.segments[0]
    assert segment.anchor_spread_ns() < FRAME_NS
    assert abs(_sample0_time_ns(segment, signal) - start_unix) <= FRAME_NS
    stats = run.status("stats")[-1]  # compressed ALAC frames, decoded bit-exact above
    assert int(stats["compressed"]) == int(stats["sent"])
    assert session.dropped > 5
    assert session.resent_received >= session.dropped
    assert session.unhealed == []
    assert session.methods[:3] == ["SETUP", "RECORD", "SETUP"]  # RECORD before stream SETUP
    assert session.teardowns == ["stream", "session"]
    assert session.volumes == [-18.0]
    assert receiver.event_replies == 1


async def test_group_of_two_receivers_agrees_within_one_frame() -> None:
    signal = test_signal(1.5, seed=5)
    async with (
        Ap2Receiver(features=NO_PTP_FEATURES) as first,
        Ap2Receiver(features=NO_PTP_FEATURES) as second,
    ):
        _, start_ntp = ntp_in(2.0)  # two cold streamers, started one after the other
        runs = [
            await Cliap2.start(address="127.0.0.1", port=rx.port, ntpstart=start_ntp)
            for rx in (first, second)
        ]
        await asyncio.gather(*(run.feed(signal) for run in runs))
        assert [await run.finish() for run in runs] == [0, 0]
        times = [_sample0_time_ns(_session(rx).segments[0], signal) for rx in (first, second)]
        assert abs(times[0] - times[1]) <= FRAME_NS


async def test_flush_continues_the_timeline_and_restarts_fast(tmp_path: Path) -> None:
    first_track, second_track = test_signal(3.0, seed=1), test_signal(1.5, seed=2)
    async with Ap2Receiver(features=NO_PTP_FEATURES) as receiver:
        _, start_ntp = ntp_in(0.8)
        fifo = tmp_path / "cmd"
        run = await Cliap2.start(
            address="127.0.0.1", port=receiver.port, ntpstart=start_ntp, fifo=fifo
        )
        await run.feed(first_track, close=False)
        await run.wait_status("elapsed", wait_s=5.0)
        flush_unix, _ = ntp_in(0.0)
        run.command("ACTION=FLUSH")
        await run.wait_status("flushed")
        await run.feed(second_track)
        assert await run.finish() == 0, run.text()
        session = _session(receiver)
        assert (session.session_setups, session.stream_setups) == (1, 1)  # warm: no new SETUP
        assert receiver.emulator.connections[0].requests[1].path == "/pair-setup"
        assert len(receiver.emulator.connections) == 1
        before, after = session.segments
        assert before.first_rtp is not None
        played = len(before.pcm()) // 4
        assert after.flush_rtp == (before.first_rtp + played) & 0xFFFFFFFF == after.first_rtp
        restart_ns = _sample0_time_ns(after, second_track) - flush_unix
        assert 0 < restart_ns < 1e9
        assert not fifo.exists()  # the streamer removed its FIFO


async def test_pin_pairing_through_the_command_fifo(tmp_path: Path) -> None:
    async with Ap2Receiver(features=NO_PTP_FEATURES, status_flags=0x8) as receiver:
        fifo = tmp_path / "cmd"
        run = await Cliap2.start(
            address="127.0.0.1",
            port=receiver.port,
            fifo=fifo,
            extra=["--dacp_id", PAIRING_ID, "--credentials_out", str(tmp_path / "creds")],
        )
        await run.wait_status("pin_required")
        assert receiver.emulator.displayed_pin is not None
        run.command(f"PIN={receiver.emulator.displayed_pin}")
        paired = await run.wait_status("paired")
        await run.feed(test_signal(0.5))
        assert await run.finish() == 0, run.text()
        assert paired["stored"] == "true"
        stored = tmp_path / "creds"
        assert stored.stat().st_mode & 0o777 == 0o600
        credentials = HapCredentials.parse(stored.read_text().strip())
        assert credentials.serialize() not in run.text()  # no secret on stderr
        assert credentials.accessory_ltpk == receiver.emulator.device.public_key
        assert receiver.emulator.device.paired[PAIRING_ID.encode()] == credentials.public_key
        assert run.status("connected")[0]["pairing"] == "pin"
        assert _session(receiver).teardowns == ["stream", "session"]


async def test_stored_credentials_use_pair_verify() -> None:
    async with Ap2Receiver(features=NO_PTP_FEATURES) as receiver:
        device = receiver.emulator.device
        credentials = HapCredentials(seed=os.urandom(32), accessory_ltpk=device.public_key)
        device.paired[PAIRING_ID.encode()] = credentials.public_key
        extra = ["--dacp_id", PAIRING_ID, "--auth", credentials.serialize()]
        run = await Cliap2.start(address="127.0.0.1", port=receiver.port, extra=extra)
        await run.feed(test_signal(0.5))
        assert await run.finish() == 0, run.text()
        assert run.status("connected")[0]["pairing"] == "verify"
        assert [r.path for r in receiver.emulator.connections[0].requests[:3]] == [
            "/info",
            "/pair-verify",
            "/pair-verify",
        ]


@pytest.mark.parametrize(
    ("device_options", "extra", "code"),
    [
        (
            {"backoff": True, "expect_errors": ["/pair-setup: HAP error backoff"]},
            [],
            "pairing_failed",
        ),
        ({}, ["--dacp_id", PAIRING_ID, "--auth", "ab" * 32 + "cd" * 64], "usage"),
        # (the sender refuses the stranger's accessory signature: the receiver refuses nothing)
        ({}, ["--dacp_id", PAIRING_ID, "--auth", None], "pairing_failed"),
    ],
    ids=["backoff", "malformed-credentials", "unknown-credentials"],
)
async def test_failed_pairing_is_a_clear_error(
    device_options: dict[str, Any], extra: list[str | None], code: str
) -> None:
    async with Ap2Receiver(features=NO_PTP_FEATURES, **device_options) as receiver:
        if None in extra:  # well-formed credentials the receiver never paired with
            stranger = HapCredentials(seed=os.urandom(32), accessory_ltpk=os.urandom(32))
            extra = [stranger.serialize() if item is None else item for item in extra]
        run = await Cliap2.start(
            address="127.0.0.1", port=receiver.port, extra=[str(item) for item in extra]
        )
        await run.feed(test_signal(0.2))
        assert await run.finish() != 0
        errors = run.status("error")
        assert errors, run.text()
        assert errors[0]["code"] == code
        assert errors[0]["message"]
        assert _session(receiver).methods == []  # nothing past pairing


async def test_ptp_only_receiver_refuses_ntp_timing() -> None:
    options = {"timing_modes": frozenset({"PTP"})}
    refusal = ["SETUP refused: can not handle NTP streams"]
    async with Ap2Receiver(session_options=options, expect_errors=refusal) as receiver:
        run = await Cliap2.start(address="127.0.0.1", port=receiver.port, extra=["--timing", "ntp"])
        await run.feed(test_signal(0.2))
        assert await run.finish() == 1
        assert run.status("error")[0]["code"] == "ntp_refused"
        assert _session(receiver).errors == ["SETUP refused: can not handle NTP streams"]
