"""bin/cliraop's start (issue 10): the lead is built up paced, never pushed in one burst, and a
lone streamer without `-ntpstart` gives its receiver enough lead. Arrival times are the RAOP
emulator's (its own clock, one record per accepted packet)."""

from __future__ import annotations

import pytest

from tests.audio import assert_audio_delivered, test_signal
from tests.receivers.packet_loss import drop_udp_datagrams, drop_udp_packets
from tests.receivers.raop_emulator import RaopEmulator
from tests.receivers.raop_emulator_wire import AudioPacketRecord
from tests.receivers.shairport import StartShairport
from tests.streamer_driver import ntp_in, run_cliraop

PREROLL_FRAMES = 3520
PACKET_S = 352 / 44100
BURST_S = 0.25  # never more audio than this back to back ...
RATE = 4.0  # ... and beyond it, never faster than 4x real time
# Loopback delivery and the emulator's event loop may bunch arrivals a little (this machine is
# shared): allow that much wall time to vanish between two arrivals.
ARRIVAL_JITTER_S = 0.010


def fresh(emu: RaopEmulator) -> list[AudioPacketRecord]:
    """The first segment's audio packets as sent (not resends), in arrival order."""
    return [p for p in emu.stream.audio_packets if not p.resent and p.segment == 0]


def worst_burst_excess(packets: list[AudioPacketRecord]) -> float:
    """max over i <= j of audio(i..j) - RATE * wall(i..j), in seconds of audio."""
    worst = 0.0
    times = [p.received_at for p in packets]
    for i in range(len(times)):
        for j in range(i, min(len(times), i + 500)):
            wall = max(0.0, times[j] - times[i] - ARRIVAL_JITTER_S)
            worst = max(worst, (j - i + 1) * PACKET_S - RATE * wall)
    return worst


def leads(emu: RaopEmulator, packets: list[AudioPacketRecord]) -> list[float]:
    """For each packet, how long before its play time it arrived (seconds)."""
    return [emu.stream.play_time_local(p.rtptime) - p.received_at for p in packets]


async def test_a_near_start_is_paced_and_the_lead_grows_to_a_latency() -> None:
    signal = test_signal(4.0, seed=31)
    async with RaopEmulator() as emu:
        # T well under a latency ahead once connected (a session gives ~0.4 s), latency 2 s
        start = ntp_in(1.2)
        run = await run_cliraop(emu.port, signal, ntpstart=start, args=["-latency", "2000"])
        assert run.returncode == 0, run.log
        started = run.status("started")
        assert int(started["actual_ntp"]) == start
        assert started["skipped_frames"] == "0"
        packets = fresh(emu)
        assert worst_burst_excess(packets) <= BURST_S
        lead = leads(emu, packets)
        assert min(lead) >= 0.1  # nothing close to late ...
        assert max(lead) >= 1.9  # ... and the lead was built up to the latency
        assert lead[0] < 1.0  # the start was well within a latency
        # Built at <= 4x: from lead[0] to 1.9 s of lead takes at least (1.9 - lead[0]) / 3 s.
        reached = next(p.received_at for p, x in zip(packets, lead, strict=True) if x >= 1.9)
        took = reached - packets[0].received_at
        assert took >= (1.9 - lead[0]) / (RATE - 1) - ARRIVAL_JITTER_S
        assert emu.stream.late_packets() == []
        pcm = emu.stream.reconstructed_pcm()
        assert pcm[PREROLL_FRAMES * 4 : PREROLL_FRAMES * 4 + len(signal)] == signal


async def test_without_ntpstart_the_receiver_gets_half_a_second_of_lead() -> None:
    signal = test_signal(3.0, seed=32)
    async with RaopEmulator() as emu:
        run = await run_cliraop(emu.port, signal, omit_ntpstart=True)
        assert run.returncode == 0, run.log
        started = run.status("started")
        assert started["first_sample"] == "0"
        packets = fresh(emu)
        first_real = packets[10]
        assert first_real.rtptime == int(started["rtptime"])
        lead = leads(emu, packets)
        assert lead[10] >= 0.4  # sample 0 reached the receiver >= 0.4 s before it plays
        assert min(lead) >= 0.25
        assert worst_burst_excess(packets) <= BURST_S
        assert run.all("stats")[-1]["underruns"] == "0"
        pcm = emu.stream.reconstructed_pcm()
        assert pcm[PREROLL_FRAMES * 4 : PREROLL_FRAMES * 4 + len(signal)] == signal


@pytest.mark.receiver
async def test_loss_right_at_a_near_start_is_healed_by_shairport_sync(
    start_shairport: StartShairport,
) -> None:
    """Random loss during a near start (paced, lead capped before the start instant): every lost
    packet is asked for and resent, or was sent twice (a start that came too near)."""
    receiver = await start_shairport("startloss")
    audio_port = receiver.udp_port_base + 2  # shairport-sync: control, timing, audio
    signal = test_signal(6.0, seed=33)
    with drop_udp_packets(audio_port, 0.05):
        run = await run_cliraop(
            receiver.port, signal, ntpstart=ntp_in(1.2), args=["-latency", "2000"]
        )
    assert run.returncode == 0, run.log
    assert run.status("started")["skipped_frames"] == "0"
    assert int(run.all("stats")[-1]["resent"]) > 5  # ~38 of 760 packets dropped on the way in
    assert_audio_delivered(await receiver.settled_output(), signal)


@pytest.mark.receiver
async def test_the_first_signal_packets_of_a_start_at_the_earliest_instant_heal_when_lost(
    start_shairport: StartShairport,
) -> None:
    """A start too near to keep (a slow launch, a late join) begins at the earliest instant: its
    first real packets leave ~0.23 s before they play. shairport-sync asks for a lost packet
    0.1 s after noticing the gap at the earliest and takes each frame out of its buffer 0.2 s
    (this lab's back-end buffer) before its play time, so a loss there could never be asked for
    (CI saw exactly this: packets 10 and 11 dropped, 704 frames of silence). The streamer sends
    such packets twice, two packets apart; here both originals of the first two signal packets
    are lost, deterministically."""
    receiver = await start_shairport("earliest")
    audio_port = receiver.udp_port_base + 2  # shairport-sync: control, timing, audio
    signal = test_signal(3.0, seed=34)
    with drop_udp_datagrams(audio_port, first=10, count=2):  # after the 10 pre-roll packets
        run = await run_cliraop(receiver.port, signal, ntpstart=ntp_in(0.0))
    assert run.returncode == 0, run.log
    started = run.status("started")
    first = int(started["first_sample"])
    assert int(started["skipped_frames"]) == first > 0  # the start instant was already too near
    stats = run.all("stats")[-1]
    assert int(stats["copies"]) >= 10
    assert int(stats["resent"]) == 0  # too late to ask: healed by the copies alone
    assert_audio_delivered(await receiver.settled_output(), signal[first * 4 :])
