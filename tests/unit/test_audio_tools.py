"""The test-audio helpers themselves: signal properties and alignment/comparison verdicts."""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.audio import (
    FRAME_BYTES,
    AudioMismatchError,
    add_dither,
    assert_audio_delivered,
    compare_audio,
    find_offset,
    silence,
    test_signal,
)

RATE = 44100
SENT = test_signal(2.0)


def _samples(pcm: bytes) -> array[int]:
    out = array("h")
    out.frombytes(pcm)
    return out


def test_signal_is_deterministic_stereo_s16le_at_minus_12_dbfs() -> None:
    assert len(SENT) == 2 * RATE * FRAME_BYTES
    assert test_signal(2.0) == SENT
    assert test_signal(2.0, seed=2) != SENT
    samples = _samples(SENT)
    peak = max(map(abs, samples))
    assert 6000 < peak <= 8192  # about -12 dBFS, far from clipping
    assert samples[0::2] != samples[1::2]  # left and right differ


def test_signal_is_not_periodic_so_alignment_is_unique() -> None:
    # A window from the middle of the signal aligns only at its own position.
    start = RATE // 2
    window = SENT[start * FRAME_BYTES : (start + 4096) * FRAME_BYTES]
    assert find_offset(SENT, window) == start


def test_shifted_dithered_copy_passes() -> None:
    lead = round(1.7 * RATE)
    received = add_dither(silence(1.7)) + add_dither(SENT, seed=3) + silence(0.3)
    result = assert_audio_delivered(received, SENT)
    assert result.offset_frames == lead
    assert result.frames_compared == 2 * RATE
    assert result.max_abs_diff == 1
    assert result.mismatched_frames == 0
    assert result.missing_tail_frames == 0


@settings(max_examples=15, deadline=None)
@given(lead_frames=st.integers(0, 3 * RATE), seed=st.integers(0, 2**16))
def test_find_offset_exact_under_dither(lead_frames: int, seed: int) -> None:
    received = add_dither(bytes(lead_frames * FRAME_BYTES) + SENT[: RATE * FRAME_BYTES], seed=seed)
    assert find_offset(received, SENT[: RATE * FRAME_BYTES]) == lead_frames


def test_dropped_packet_in_the_middle_fails() -> None:
    cut = RATE  # one 352-frame packet missing at 1 s
    received = silence(1.0) + SENT[: cut * FRAME_BYTES] + SENT[(cut + 352) * FRAME_BYTES :]
    result = compare_audio(received, SENT)
    assert result.offset_frames == RATE
    assert result.first_mismatch_frame == cut
    assert result.mismatched_frames > 0
    assert result.missing_tail_frames == 352
    with pytest.raises(AudioMismatchError, match="not delivered intact"):
        assert_audio_delivered(received, SENT)


def test_missing_tail_fails() -> None:
    received = silence(0.5) + SENT[: -100 * FRAME_BYTES]
    result = compare_audio(received, SENT)
    assert result.mismatched_frames == 0
    assert result.missing_tail_frames == 100
    with pytest.raises(AssertionError):
        assert_audio_delivered(received, SENT)


def test_missing_head_fails() -> None:
    received = silence(0.5) + SENT[1000 * FRAME_BYTES :]
    result = compare_audio(received, SENT)
    assert result.offset_frames == round(0.5 * RATE) - 1000
    assert result.first_mismatch_frame == 0
    assert result.mismatched_frames >= 1000
    with pytest.raises(AssertionError):
        assert_audio_delivered(received, SENT)


def test_wrong_channel_order_fails() -> None:
    swapped = _samples(SENT)
    swapped[0::2], swapped[1::2] = swapped[1::2], swapped[0::2]
    with pytest.raises(AudioMismatchError, match="not found"):
        assert_audio_delivered(silence(1.0) + swapped.tobytes(), SENT)


def test_one_sample_beyond_tolerance_is_one_mismatched_frame() -> None:
    samples = _samples(SENT)
    samples[2 * 5000 + 1] += 3
    result = compare_audio(samples.tobytes(), SENT, tolerance_lsb=2)
    assert (result.max_abs_diff, result.mismatched_frames, result.first_mismatch_frame) == (
        3,
        1,
        5000,
    )
    assert compare_audio(samples.tobytes(), SENT, tolerance_lsb=3).ok


def test_search_frames_bounds_the_offset() -> None:
    received = silence(2.0) + SENT
    assert find_offset(received, SENT, search_frames=2 * RATE) == 2 * RATE
    with pytest.raises(AudioMismatchError):
        find_offset(received, SENT, search_frames=RATE)


def test_partial_trailing_frame_is_ignored() -> None:
    assert assert_audio_delivered(SENT + b"\x01\x02\x03", SENT).frames_compared == 2 * RATE


def test_silence_only_is_not_found() -> None:
    with pytest.raises(AudioMismatchError):
        find_offset(add_dither(silence(3.0)), SENT)
