"""The `[STATUS]` contract: typed events format to the exact text the streamers wrote before."""

from __future__ import annotations

import pytest

from airplay_provider.protocol.streamer_status import (
    EVENT_TYPES,
    Artwork,
    ClockStatus,
    Connected,
    Elapsed,
    Eof,
    Error,
    ErrorCode,
    Exit,
    Flushed,
    Metadata,
    Paired,
    Paused,
    PinRequired,
    Playing,
    Started,
    Stats,
    StatusEvent,
    Stopped,
    StreamerError,
    Timing,
    UnknownStatus,
    Volume,
    Waiting,
    format_status,
    parse_status,
    parse_status_fields,
)

NTP = 16893421357081231360

# The right-hand texts were captured from the untyped `format_status(event, fields)` before the
# contract was typed (same representative values): the wire must not change by one byte.
GOLDEN: list[tuple[StatusEvent, str]] = [
    (
        Connected("127.0.0.1", 5000, 2000, encrypted=True, audio_latency=""),
        "[STATUS] connected host=127.0.0.1 port=5000 latency_ms=2000 encrypted=true"
        ' audio_latency=""',
    ),
    (
        Connected("::1", 7000, 2000, encrypted=False, audio_latency="11025"),
        "[STATUS] connected host=::1 port=7000 latency_ms=2000 encrypted=false audio_latency=11025",
    ),
    (
        Connected("Living Room.local", 7000, 1000, timing="ptp", pairing="transient"),
        '[STATUS] connected host="Living Room.local" port=7000 latency_ms=1000 timing=ptp'
        " pairing=transient",
    ),
    (
        Started(NTP, NTP, 3520, 4242, 123456789, 0),
        f"[STATUS] started requested_ntp={NTP} actual_ntp={NTP} first_sample=3520 seq=4242"
        " rtptime=123456789 skipped_frames=0",
    ),
    (
        Started(NTP, NTP, 3520, 4242, 123456789, 0, stream_type="buffered"),
        f"[STATUS] started requested_ntp={NTP} actual_ntp={NTP} first_sample=3520 seq=4242"
        " rtptime=123456789 skipped_frames=0 stream_type=buffered",
    ),
    (
        Waiting("receiver_clock", 10),
        "[STATUS] waiting reason=receiver_clock limit_s=10",
    ),
    (
        Playing(NTP, NTP + 1, 88200, 65535, 4294967295, -3),
        f"[STATUS] playing requested_ntp={NTP} actual_ntp={NTP + 1} first_sample=88200"
        " seq=65535 rtptime=4294967295 skipped_frames=-3",
    ),
    (Paused(44100), "[STATUS] paused sample=44100"),
    (Elapsed(12345), "[STATUS] elapsed ms=12345"),
    (Volume(75), "[STATUS] volume value=75"),
    (
        Stats(100, 2, 0, 1, 0, 0),
        "[STATUS] stats sent=100 resent=2 late=0 underruns=1 lost=0 send_errors=0",
    ),
    (
        Stats(100, 2, 0, 1, 0, 0, 80, 900, -5, 2500),
        "[STATUS] stats sent=100 resent=2 late=0 underruns=1 lost=0 send_errors=0"
        " jitter_p50_us=80 jitter_p99_us=900 jitter_max_us=-5 wakeups=2500",
    ),
    (
        Stats(100, 2, 0, 1, 0, 0, compressed=99, payload_bytes=70000),
        "[STATUS] stats sent=100 resent=2 late=0 underruns=1 lost=0 send_errors=0"
        " compressed=99 payload_bytes=70000",
    ),
    (Eof(1323000), "[STATUS] eof samples=1323000"),
    (Stopped(0), "[STATUS] stopped sample=0"),
    (
        Error(ErrorCode.TIMEOUT, "no answer in 5 s"),
        '[STATUS] error code=timeout message="no answer in 5 s"',
    ),
    (Error(ErrorCode.USAGE, 'bad "x"=y'), r'[STATUS] error code=usage message="bad \"x\"=y"'),
    (Error(ErrorCode.EMPTY_INPUT, ""), '[STATUS] error code=empty_input message=""'),
    (
        Error(ErrorCode.RECEIVER_GONE, "receiver gone: it closed the RTSP connection"),
        '[STATUS] error code=receiver_gone message="receiver gone: it closed the RTSP connection"',
    ),
    (Exit(0), "[STATUS] exit code=0"),
    (Metadata('Song = "A"', ""), r'[STATUS] metadata title="Song = \"A\"" artist=""'),
    (Metadata("Émilie", "Bob"), '[STATUS] metadata title="Émilie" artist=Bob'),
    (Artwork(5120), "[STATUS] artwork bytes=5120"),
    (Flushed(352), "[STATUS] flushed samples=352"),
    (Paired(stored=True), "[STATUS] paired stored=true"),
    (Paired(stored=False), "[STATUS] paired stored=false"),
    (PinRequired(), "[STATUS] pin_required"),
    (Timing("ntp", reason="auto"), "[STATUS] timing protocol=ntp reason=auto"),
    (
        Timing("ptp", clock_id="00000000DEADBEEF", daemon_pid=1234, ptp_minus_mono_ns=-98765),
        "[STATUS] timing protocol=ptp clock_id=00000000DEADBEEF daemon_pid=1234"
        " ptp_minus_mono_ns=-98765",
    ),
    (
        ClockStatus("ptp", "probing", peer="10.0.0.2", after_ms=1080, probes=1, ready_in_ms=2299),
        "[STATUS] clock mode=ptp state=probing peer=10.0.0.2 after_ms=1080 probes=1"
        " ready_in_ms=2299",
    ),
    (
        ClockStatus("ptp", "stalled", peer="10.0.0.2", after_ms=5000, probes=0, cause="no PTP"),
        '[STATUS] clock mode=ptp state=stalled peer=10.0.0.2 after_ms=5000 probes=0 cause="no PTP"',
    ),
    (
        ClockStatus(
            "ptp",
            "tracking",
            peer="10.0.0.9",
            after_ms=2125,
            probes=13,
            offset_us=-4321500,
            drift_ppb=39512,
            error_us=4,
        ),
        "[STATUS] clock mode=ptp state=tracking peer=10.0.0.9 after_ms=2125 probes=13"
        " offset_us=-4321500 drift_ppb=39512 error_us=4",
    ),
]


@pytest.mark.parametrize(("event", "text"), GOLDEN, ids=[t.split()[1] for _, t in GOLDEN])
def test_wire_text_is_unchanged(event: StatusEvent, text: str) -> None:
    assert format_status(event) == text


@pytest.mark.parametrize(("event", "text"), GOLDEN, ids=[t.split()[1] for _, t in GOLDEN])
def test_parse_inverts_format(event: StatusEvent, text: str) -> None:
    parsed = parse_status(text)
    assert parsed == event
    assert type(parsed) is type(event)
    assert parse_status(text + "\r\n") == event


def test_every_event_type_has_a_golden_line() -> None:
    assert {type(event) for event, _ in GOLDEN} == set(EVENT_TYPES.values())


def test_error_codes_parse_to_the_enum_and_unknown_codes_survive() -> None:
    parsed = parse_status("[STATUS] error code=busy message=x")
    assert isinstance(parsed, Error)
    assert parsed.code is ErrorCode.BUSY
    newer = parse_status("[STATUS] error code=brand_new message=x")
    assert newer == Error("brand_new", "x")


def test_untypeable_lines_become_unknown_status() -> None:
    assert parse_status("[STATUS] future_event a=1") == UnknownStatus("future_event", {"a": "1"})
    # a known event with a missing or malformed field is not guessed at
    assert parse_status("[STATUS] paused") == UnknownStatus("paused", {})
    assert parse_status("[STATUS] paused sample=x") == UnknownStatus("paused", {"sample": "x"})
    assert parse_status("[STATUS] paired stored=yes") == UnknownStatus("paired", {"stored": "yes"})
    assert format_status(UnknownStatus("future_event", {"a": "1 2"})) == (
        '[STATUS] future_event a="1 2"'
    )


def test_extra_fields_from_a_newer_streamer_are_ignored() -> None:
    assert parse_status("[STATUS] volume value=3 source=remote") == Volume(3)


def test_non_status_lines_are_not_events() -> None:
    assert parse_status("12:00:00 cliraop: connected to x") is None
    assert parse_status_fields('[STATUS] error code=timeout message="no"') == (
        "error",
        {"code": "timeout", "message": "no"},
    )


def test_streamer_error_carries_its_code() -> None:
    error = StreamerError(ErrorCode.BUSY, "SETUP: busy")
    assert error.code == "busy"
    assert str(error) == "SETUP: busy"


def test_events_are_values_of_their_own_type() -> None:
    assert Paused(5) == Paused(5)
    assert hash(Paused(5)) == hash(Paused(5))
    assert Paused(5) != Stopped(5)  # same fields, different event
    assert Started(1, 2, 3, 4, 5, 6) != Playing(1, 2, 3, 4, 5, 6)
    assert Paused(5) != (5,)
    assert len({Volume(3), Volume(3), Volume(4)}) == 2
    assert repr(Error(ErrorCode.BUSY, "x")) == "Error(code=<ErrorCode.BUSY: 'busy'>, message='x')"
    with pytest.raises(AttributeError):
        Paused(5).sample = 6  # type: ignore[misc]
