"""A member checks the instant its streamer reports against the one it was given: input skipped
as late keeps the group's timeline; a moved instant does not."""

from __future__ import annotations

from pathlib import Path

from airplay_provider.protocol.streamer_status import Playing
from airplay_provider.protocol.timing import ntp_add_frames, ntp_add_ns
from airplay_provider.session.member import MemberState, SessionMember
from airplay_provider.session.processes import StreamTarget

T = 0xE000_0000_0000_0000


def _playing(actual_ntp: int, first_sample: int, skipped_frames: int) -> Playing:
    return Playing(
        requested_ntp=T,
        actual_ntp=actual_ntp,
        first_sample=first_sample,
        seq=1,
        rtptime=2,
        skipped_frames=skipped_frames,
    )


def _member(tmp_path: Path) -> SessionMember:
    member = SessionMember(
        StreamTarget(name="Den", host="127.0.0.1", port=5000), offset=0, fifo_dir=tmp_path
    )
    member.expected_ntp = T
    return member


def test_a_resume_whose_first_packets_were_skipped_is_still_on_the_timeline(
    tmp_path: Path,
) -> None:
    member = _member(tmp_path)
    # resumed at sample 1000, the first 9152 frames skipped as late: sample 10152 plays then
    member._on_status(member.streamer, _playing(ntp_add_frames(T, 9152), 10152, 9152))
    assert member.state is MemberState.PLAYING
    assert not member.misaligned
    assert member.expected_ntp is None  # checked once


def test_a_moved_instant_is_misaligned(tmp_path: Path) -> None:
    member = _member(tmp_path)
    member._on_status(member.streamer, _playing(ntp_add_ns(T, 50_000_000), 1000, 0))
    assert member.state is MemberState.PLAYING
    assert member.misaligned
    skipped_and_moved = _member(tmp_path)
    late = ntp_add_ns(ntp_add_frames(T, 352), 1_000_000)
    skipped_and_moved._on_status(skipped_and_moved.streamer, _playing(late, 1352, 352))
    assert skipped_and_moved.misaligned
