"""Hi-res through the provider's playback path (GroupPlayback → StreamSession → cliap2 → the
AirPlay 2 emulator): the source is asked for 48 kHz, converted once to s24le and played
bit-exact at ``T + k/48000`` to members that opted in and stream buffered; the group's other
members play 16-bit/44.1 kHz through one resampling branch, in sync (an impulse heard at the
same instant ± 1 frame); a member that wanted hi-res and cannot have it says why.
"""

from __future__ import annotations

import asyncio
import logging
import random
from array import array
from collections.abc import AsyncIterator

import pytest
from music_assistant_models.player import PlayerMedia

from airplay_provider.config import PlayerSettings
from airplay_provider.pcm_convert import flow_to_s24
from airplay_provider.player import AirPlayPlayer
from airplay_provider.protocol.timing import ntp_add_frames, unix_ns_from_ntp
from airplay_provider.protocol.txt import AIRPLAY_SERVICE_TYPE, merge_records, parse_service
from airplay_provider.session import GroupPlayback, SessionMember, StreamSession
from airplay_provider.session.pcm_format import CD_FORMAT, HIRES_FORMAT
from tests.audio import assert_audio_delivered, test_signal
from tests.group_helpers import s16_to_f32
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_segment import Segment
from tests.receivers.ap2_sender import NO_PTP_FEATURES

BUFFERED = NO_PTP_FEATURES | (1 << 40)
NOT_APPLE = "Speaker1,1"
HIRES = PlayerSettings(hires_audio=True, airplay_latency_ms=250)
PLAIN = PlayerSettings(airplay_latency_ms=250)


def _player(
    name: str, mac: str, port: int, features: int, settings: PlayerSettings
) -> AirPlayPlayer:
    record = parse_service(
        AIRPLAY_SERVICE_TYPE,
        f"{name}._airplay._tcp.local.",
        port=port,
        addresses=["127.0.0.1"],
        properties={
            "deviceid": mac,
            "features": f"0x{features & 0xFFFFFFFF:X},0x{features >> 32:X}",
            "model": NOT_APPLE,
        },
    )
    return AirPlayPlayer(merge_records(None, record), settings)


class Source:
    """A flow source factory that records the rate each stream was asked for; with `nap_s`,
    it sleeps that long before each quarter second of audio (a live source: the session stays
    playing, not draining, until its end)."""

    def __init__(self, flow: bytes, rate: int, nap_s: float = 0.0) -> None:
        self.flow = flow
        self.rate = rate
        self.nap_s = nap_s
        self.asked: list[int] = []

    def __call__(
        self, player_id: str, media: PlayerMedia, sample_rate: int = 44100
    ) -> AsyncIterator[bytes]:
        self.asked.append(sample_rate)
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        step = self.rate * 8 // (4 if self.nap_s else 1)
        for offset in range(0, len(self.flow), step):
            if self.nap_s:
                await asyncio.sleep(self.nap_s)
            yield self.flow[offset : offset + step]


def flow_24(seconds: float, *, seed: int) -> bytes:
    """f32le stereo at 48 kHz whose every sample is a 24-bit value (s24 round-trips exactly),
    with content in the low byte that a 16-bit path would lose."""
    rng = random.Random(seed)
    count = round(seconds * 48000) * 2
    return array("f", (rng.randint(-(2**21), 2**21) / 2**23 for _ in range(count))).tobytes()


def _locate_s24(received: bytes, sent: bytes) -> int:
    """Frame offset where all of `sent` (s24le stereo) is in `received`, byte for byte."""
    probe = sent[: 352 * 6]
    start = received.find(probe)
    while start >= 0 and start % 6:
        start = received.find(probe, start + 1)
    assert start >= 0, "the first packet of the sent audio is nowhere in the received"
    assert received[start : start + len(sent)] == sent
    return start // 6


def _playback(players: list[AirPlayPlayer], source: Source) -> GroupPlayback:
    by_id = {p.player_id: p for p in players}
    return GroupPlayback(by_id.get, source, lambda _: None)


def _last_segment(receiver: Ap2Receiver) -> Segment:
    """The receiver's last segment, checking that the emulator saw no protocol error."""
    emulated = receiver.session
    assert emulated is not None
    assert emulated.errors == []
    return emulated.segments[-1]


async def _join_late(
    playback: GroupPlayback, session: StreamSession, player: AirPlayPlayer, leader: str
) -> SessionMember:
    """`player` joins `leader`'s group; the member it became."""
    # the join comes at T + 0.5 s, well after the start (not an assertion)
    await asyncio.sleep(session.clock.seconds_until(session.start_ntp) + 0.5)
    await playback.join(leader, player)
    return session.members[player.player_id]


async def _play(players: list[AirPlayPlayer], source: Source) -> StreamSession:
    playback = _playback(players, source)
    session = await playback.play(players[0], players[1:], PlayerMedia(uri="test://hires"))
    assert session is not None
    try:
        assert await session.wait_ended(20)
    finally:
        await playback.close()
    return session


async def test_a_hires_group_plays_24_bit_48k_bit_exact_on_its_timeline() -> None:
    flow = flow_24(2.0, seed=81)
    expected = flow_to_s24(flow)
    assert expected[0::3] != bytes(len(expected) // 3)  # the low bytes carry signal
    source = Source(flow, 48000)
    async with (
        Ap2Receiver(features=BUFFERED, model=NOT_APPLE) as den,
        Ap2Receiver(features=BUFFERED, model=NOT_APPLE) as hall,
    ):
        players = [
            _player("Den", "AA:BB:CC:00:01:01", den.port, BUFFERED, HIRES),
            _player("Hall", "AA:BB:CC:00:01:02", hall.port, BUFFERED, HIRES),
        ]
        session = await _play(players, source)
        assert source.asked == [48000]
        assert session.pcm_format == HIRES_FORMAT
        assert session.format_notes == {}
        for receiver, member in zip((den, hall), session.departed, strict=True):
            assert (member.target.bits, member.target.rate) == (24, 48000)
            started = member.started
            assert started is not None
            assert started.stream_type == "buffered"
            segment = _last_segment(receiver)
            offset = _locate_s24(segment.pcm(), expected)  # every sample, all 24 bits
            assert segment.first_rtp is not None
            # session frame k plays at T + k/48000 (± 1 frame) on each member
            for k in (0, 352, 48000):
                rtp = (segment.first_rtp + offset + k) & 0xFFFFFFFF
                wanted = unix_ns_from_ntp(ntp_add_frames(member.start_ntp, k, 48000))
                error = (segment.scheduled_ns(rtp) - wanted) * 48000 / 1e9
                assert abs(error) <= 1.0, (member.key, k, error)


async def test_a_group_where_no_member_can_take_hires_plays_16_bit_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    signal = test_signal(1.5, seed=82)
    source = Source(s16_to_f32(signal), 44100)
    async with (
        Ap2Receiver(features=BUFFERED, model=NOT_APPLE) as den,
        Ap2Receiver(features=NO_PTP_FEATURES, model=NOT_APPLE) as attic,  # no bit 40: realtime
    ):
        players = [
            _player("Den", "AA:BB:CC:00:02:01", den.port, BUFFERED, PLAIN),  # hi-res off
            _player("Attic", "AA:BB:CC:00:02:02", attic.port, NO_PTP_FEATURES, HIRES),
        ]
        with caplog.at_level(logging.WARNING):
            session = await _play(players, source)
        assert source.asked == [44100]  # no hidden 48 kHz decode either
        assert session.pcm_format == CD_FORMAT
        assert session.branches == {}
        attic_id = players[1].player_id
        assert list(session.format_notes) == [attic_id]
        assert "streams realtime" in session.format_notes[attic_id]
        assert "Attic plays 16-bit/44.1 kHz, not hi-res: 24-bit/48 kHz needs" in caplog.text
        for receiver in (den, attic):
            assert_audio_delivered(_last_segment(receiver).pcm(), signal, tolerance_lsb=0)


def _impulse_flow(seconds: float, *, at_frame: int, seed: int) -> bytes:
    """`flow_24` at a low level, plus a 0.9 impulse on both channels at `at_frame`."""
    floats = array("f")
    floats.frombytes(flow_24(seconds, seed=seed))
    for i in range(len(floats)):
        floats[i] /= 64
    floats[2 * at_frame] = floats[2 * at_frame + 1] = 0.9
    return floats.tobytes()


async def test_a_mixed_group_plays_24_bit_and_16_bit_members_in_sync() -> None:
    """Den (hi-res, buffered) gets the 48 kHz source bit-exact at 24 bits; Attic (realtime:
    16-bit/44.1 kHz) gets it through the group's one resampling branch. An impulse at 1.0 s
    is heard at the same instant on both (± 1 frame), at T + 1 s."""
    flow = _impulse_flow(2.0, at_frame=48000, seed=84)
    expected = flow_to_s24(flow)
    source = Source(flow, 48000)
    async with (
        Ap2Receiver(features=BUFFERED, model=NOT_APPLE) as den,
        Ap2Receiver(features=NO_PTP_FEATURES, model=NOT_APPLE) as attic,
    ):
        players = [
            _player("Den", "AA:BB:CC:00:05:01", den.port, BUFFERED, HIRES),
            _player("Attic", "AA:BB:CC:00:05:02", attic.port, NO_PTP_FEATURES, HIRES),
        ]
        session = await _play(players, source)
        assert source.asked == [48000]
        assert session.pcm_format == HIRES_FORMAT
        assert list(session.branches) == [CD_FORMAT]
        den_id, attic_id = (p.player_id for p in players)
        assert list(session.format_notes) == [attic_id]
        members = {m.key: m for m in session.departed}
        assert (members[den_id].target.bits, members[attic_id].target.rate) == (24, 44100)
        for member in members.values():  # each started on its instant, nothing skipped
            assert not member.misaligned
            assert member.started is not None
            assert member.started.skipped_frames == 0
        heard = {}
        for receiver, key in ((den, den_id), (attic, attic_id)):
            segment = _last_segment(receiver)
            assert segment.first_rtp is not None
            pcm = segment.pcm()
            if key == den_id:
                index = _locate_s24(pcm, expected) + 48000
            else:
                left = array("h")
                left.frombytes(pcm[: len(pcm) // 4 * 4])
                index = max(range(0, len(left), 2), key=lambda i: abs(left[i])) // 2
            heard[key] = segment.scheduled_ns((segment.first_rtp + index) & 0xFFFFFFFF)
        t_plus_1 = unix_ns_from_ntp(ntp_add_frames(session.start_ntp, 1, 1))
        gap_frames = (heard[attic_id] - heard[den_id]) * 44100 / 1e9
        assert abs(gap_frames) <= 1.0, gap_frames
        for key in (den_id, attic_id):
            assert abs(heard[key] - t_plus_1) * 44100 / 1e9 <= 1.0, (key, heard[key] - t_plus_1)


async def test_a_hires_player_joins_a_hires_group_late_on_its_timeline() -> None:
    flow = flow_24(5.0, seed=83)
    expected = flow_to_s24(flow)
    # 5 s of audio over 4 s: still flowing when the joiner has connected on a loaded machine
    # (a source read to its end drains the session, which then takes no joiner)
    source = Source(flow, 48000, nap_s=0.2)
    async with (
        Ap2Receiver(features=BUFFERED, model=NOT_APPLE) as den,
        Ap2Receiver(features=BUFFERED, model=NOT_APPLE) as hall,
    ):
        players = [
            _player("Den", "AA:BB:CC:00:04:01", den.port, BUFFERED, HIRES),
            _player("Hall", "AA:BB:CC:00:04:02", hall.port, BUFFERED, HIRES),
        ]
        playback = _playback(players, source)
        try:
            session = await playback.play(players[0], [], PlayerMedia(uri="test://hires"))
            assert session is not None
            joiner = await _join_late(playback, session, players[1], players[0].player_id)
            p = joiner.offset
            assert p > 0
            assert await session.wait_ended(20)
        finally:
            await playback.close()
        assert (joiner.target.bits, joiner.target.rate) == (24, 48000)
        segment = _last_segment(hall)
        offset = _locate_s24(segment.pcm(), expected[p * 6 :])
        assert segment.first_rtp is not None
        for k in (0, 48000):  # its first frame, session frame p, at T + p/48000 (± 1 frame)
            rtp = (segment.first_rtp + offset + k) & 0xFFFFFFFF
            wanted = unix_ns_from_ntp(ntp_add_frames(session.start_ntp, p + k, 48000))
            error = (segment.scheduled_ns(rtp) - wanted) * 48000 / 1e9
            assert abs(error) <= 1.0, (k, error)


def _impulse_ns(receiver: Ap2Receiver, bits: int) -> int:
    """When the emulator plays the loudest sample of its last segment (Unix ns)."""
    segment = _last_segment(receiver)
    assert segment.first_rtp is not None
    pcm = segment.pcm()
    if bits == 24:
        values = [
            int.from_bytes(pcm[i : i + 3], "little", signed=True) for i in range(0, len(pcm), 6)
        ]
    else:
        left = array("h")
        left.frombytes(pcm[: len(pcm) // 4 * 4])
        values = list(left[0::2])
    index = max(range(len(values)), key=lambda i: abs(values[i]))
    return segment.scheduled_ns((segment.first_rtp + index) & 0xFFFFFFFF)


async def test_a_16_bit_player_joins_a_hires_group_late_through_a_new_branch() -> None:
    """Den plays hi-res alone; Attic (realtime, 16-bit) joins: the group opens its branch at
    the join and Attic hears the impulse (at 2.2 s) when Den does (± 1 frame)."""
    flow = _impulse_flow(5.0, at_frame=round(2.2 * 48000), seed=85)
    source = Source(flow, 48000, nap_s=0.2)  # 5 s of audio over 4 s (still flowing at the join)
    async with (
        Ap2Receiver(features=BUFFERED, model=NOT_APPLE) as den,
        Ap2Receiver(features=NO_PTP_FEATURES, model=NOT_APPLE) as attic,
    ):
        players = [
            _player("Den", "AA:BB:CC:00:06:01", den.port, BUFFERED, HIRES),
            _player("Attic", "AA:BB:CC:00:06:02", attic.port, NO_PTP_FEATURES, PLAIN),
        ]
        playback = _playback(players, source)
        try:
            session = await playback.play(players[0], [], PlayerMedia(uri="test://hires"))
            assert session is not None
            assert session.branches == {}
            joiner = await _join_late(playback, session, players[1], players[0].player_id)
            assert (joiner.target.bits, joiner.target.rate) == (16, 44100)
            assert list(session.branches) == [CD_FORMAT]
            assert joiner.offset > 0
            assert await session.wait_ended(20)
        finally:
            await playback.close()
        at = unix_ns_from_ntp(ntp_add_frames(session.start_ntp, 11, 5))  # T + 2.2 s
        for receiver, bits in ((den, 24), (attic, 16)):
            error = (_impulse_ns(receiver, bits) - at) * 44100 / 1e9
            assert abs(error) <= 1.0, (bits, error)


async def test_a_mixed_group_pauses_and_resumes_in_sync() -> None:
    """Den (hi-res) and Attic (realtime: 16-bit through the branch) pause and resume on one
    new timeline; the impulse after the resume is heard together (± 1 frame)."""
    flow = _impulse_flow(3.0, at_frame=round(2.5 * 48000), seed=86)
    source = Source(flow, 48000)
    async with (
        Ap2Receiver(features=BUFFERED, model=NOT_APPLE) as den,
        Ap2Receiver(features=NO_PTP_FEATURES, model=NOT_APPLE) as attic,
    ):
        players = [
            _player("Den", "AA:BB:CC:00:07:01", den.port, BUFFERED, HIRES),
            _player("Attic", "AA:BB:CC:00:07:02", attic.port, NO_PTP_FEATURES, PLAIN),
        ]
        playback = _playback(players, source)
        try:
            session = await playback.play(players[0], players[1:], PlayerMedia(uri="test://x"))
            assert session is not None
            await asyncio.sleep(0.8)  # let it play a while (not an assertion)
            await session.pause()
            await asyncio.sleep(0.5)
            await session.resume()
            assert await session.wait_ended(20)
        finally:
            await playback.close()
        den_ns, attic_ns = _impulse_ns(den, 24), _impulse_ns(attic, 16)
        gap = (attic_ns - den_ns) * 44100 / 1e9
        assert abs(gap) <= 1.0, gap
        at = unix_ns_from_ntp(ntp_add_frames(session.start_ntp, 5, 2))  # the resumed T + 2.5 s
        assert abs(den_ns - at) * 44100 / 1e9 <= 1.0


async def test_a_member_whose_receiver_refuses_hires_plays_16_bit_in_sync() -> None:
    """Liar's TXT offers buffered audio, its `/info` does not: cliap2 refuses 24-bit there
    (`format_unsupported`); the session starts it again at 16-bit/44.1 kHz in the group's
    branch, says why, and it hears the impulse when Den does."""
    flow = _impulse_flow(2.0, at_frame=48000, seed=87)
    source = Source(flow, 48000)
    async with (
        Ap2Receiver(features=BUFFERED, model=NOT_APPLE) as den,
        Ap2Receiver(features=NO_PTP_FEATURES, model=NOT_APPLE) as liar,
    ):
        players = [
            _player("Den", "AA:BB:CC:00:08:01", den.port, BUFFERED, HIRES),
            _player("Liar", "AA:BB:CC:00:08:02", liar.port, BUFFERED, HIRES),  # TXT: bit 40
        ]
        session = await _play(players, source)
        liar_id = players[1].player_id
        assert "not hi-res: the receiver refused 24-bit/48 kHz" in session.format_notes[liar_id]
        played = [m for m in session.departed if m.key == liar_id and m.state == "finished"]
        assert [(m.target.bits, m.target.rate) for m in played] == [(16, 44100)]
        gap = (_impulse_ns(liar, 16) - _impulse_ns(den, 24)) * 44100 / 1e9
        assert abs(gap) <= 1.0, gap
