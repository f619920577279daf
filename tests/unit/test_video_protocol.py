"""AirPlay video, sans-I/O: `/play` bodies, control paths, `/playback-info` parsing, tracker."""

from __future__ import annotations

import plistlib

import pytest

from airplay_provider.protocol.video import (
    CertificateRejected,
    DeviceError,
    DevicePlaybackError,
    PlaybackInfo,
    PlaybackState,
    PlaybackTracker,
    Progress,
    UrlPlaybackError,
    check_url,
    parse_playback_info,
    play_body,
    progress_line,
    rate_path,
    scrub_path,
    supports_url_playback,
)

URL = "http://127.0.0.1:8000/movie.mp4"


def test_play_body_is_a_binary_plist_with_location_position_and_session() -> None:
    body = play_body(URL, 0.25, "ABC")
    assert body.startswith(b"bplist00")
    assert plistlib.loads(body) == {
        "Content-Location": URL,
        "Start-Position": 0.25,
        "X-Apple-Session-ID": "ABC",
    }


@pytest.mark.parametrize("position", [-0.1, 1.5, float("nan")])
def test_play_body_refuses_a_start_position_outside_0_to_1(position: float) -> None:
    with pytest.raises(UrlPlaybackError, match="between 0 and 1"):
        play_body(URL, position, "ABC")


@pytest.mark.parametrize("url", ["ftp://host/x", "/tmp/file.mp4", "http://", "movie.mp4"])
def test_check_url_refuses_what_a_device_cannot_fetch(url: str) -> None:
    with pytest.raises(UrlPlaybackError, match="not an http"):
        check_url(url)


def test_control_paths() -> None:
    assert rate_path(0) == "/rate?value=0"
    assert rate_path(1.0) == "/rate?value=1"
    assert scrub_path(12.5) == "/scrub?position=12.5"
    assert scrub_path(3.0000004) == "/scrub?position=3"
    with pytest.raises(UrlPlaybackError):
        scrub_path(-1)


def test_video_feature_is_bit_0() -> None:
    assert supports_url_playback(0x1 | 1 << 9)
    assert not supports_url_playback(1 << 9 | 1 << 38 | 1 << 48)


def test_parse_playback_info_reads_xml_and_binary_plists() -> None:
    info = {"duration": 90.5, "position": 12.25, "rate": 1.0, "readyToPlay": True}
    for fmt in (plistlib.FMT_XML, plistlib.FMT_BINARY):
        parsed = parse_playback_info(plistlib.dumps(info, fmt=fmt))
        assert parsed == PlaybackInfo(duration=90.5, position=12.25, rate=1.0, ready_to_play=True)


def test_parse_playback_info_empty_means_nothing_loaded() -> None:
    assert parse_playback_info(b"") == PlaybackInfo()
    assert parse_playback_info(plistlib.dumps({"readyToPlay": False})).duration is None
    # a zero or nonsense duration is "not loaded" too
    bogus = {"duration": 0.0, "position": "x", "rate": True}
    assert parse_playback_info(plistlib.dumps(bogus)) == PlaybackInfo()


def test_parse_playback_info_reads_the_error_dictionary() -> None:
    body = plistlib.dumps(
        {"error": {"code": -1202, "domain": "NSURLErrorDomain", "localizedDescription": "nope"}}
    )
    assert parse_playback_info(body).error == DeviceError(-1202, "NSURLErrorDomain", "nope")
    assert parse_playback_info(plistlib.dumps({"error": "broken"})).error == DeviceError(
        0, "", "broken"
    )


@pytest.mark.parametrize("body", [b"garbage", plistlib.dumps([1, 2])])
def test_parse_playback_info_refuses_garbage(body: bytes) -> None:
    with pytest.raises(DevicePlaybackError, match="playback-info"):
        parse_playback_info(body)


def loaded(position: float, rate: float = 1.0, duration: float = 10.0) -> PlaybackInfo:
    return PlaybackInfo(duration=duration, position=position, rate=rate, ready_to_play=True)


def test_tracker_loading_playing_paused_then_ended_when_the_item_goes() -> None:
    tracker = PlaybackTracker(URL, 100.0)
    assert tracker.update(PlaybackInfo(), 100.5).state is PlaybackState.LOADING
    assert tracker.update(loaded(1.0), 101.0) == Progress(PlaybackState.PLAYING, 1.0, 10.0)
    assert tracker.update(loaded(2.0, rate=0.0), 102.0).state is PlaybackState.PAUSED
    assert not tracker.finished
    ended = tracker.update(PlaybackInfo(), 103.0)  # the device dropped the item
    assert ended == Progress(PlaybackState.ENDED, 10.0, 10.0)
    assert tracker.finished
    assert tracker.update(loaded(0.0), 104.0).state is PlaybackState.ENDED  # stays ended


def test_tracker_ended_when_stopped_at_the_end() -> None:
    tracker = PlaybackTracker(URL, 0.0)
    tracker.update(loaded(9.0), 1.0)
    assert tracker.update(loaded(10.0, rate=0.0), 2.0).state is PlaybackState.ENDED


def test_tracker_fails_when_the_device_never_loads() -> None:
    tracker = PlaybackTracker(URL, 0.0, load_timeout=5.0)
    assert tracker.update(PlaybackInfo(), 4.9).state is PlaybackState.LOADING
    assert tracker.update(PlaybackInfo(), 5.1).state is PlaybackState.FAILED
    assert isinstance(tracker.failure, DevicePlaybackError)
    assert "did not start playing within 5 s" in str(tracker.failure)


def test_tracker_certificate_error_on_https_is_its_own_error() -> None:
    error = DeviceError(-1202, "NSURLErrorDomain", "certificate not trusted")
    tracker = PlaybackTracker("https://127.0.0.1:8443/a.mp4", 0.0)
    assert tracker.update(PlaybackInfo(error=error), 1.0).state is PlaybackState.FAILED
    assert isinstance(tracker.failure, CertificateRejected)
    assert "does not accept the certificate of https://127.0.0.1:8443/a.mp4" in str(tracker.failure)
    other = PlaybackTracker(URL, 0.0)
    other.update(PlaybackInfo(error=DeviceError(-1004, "NSURLErrorDomain", "no server")), 1.0)
    assert type(other.failure) is DevicePlaybackError
    assert "playback error: no server (NSURLErrorDomain -1004)" in str(other.failure)


def test_progress_line() -> None:
    assert progress_line(Progress(PlaybackState.PLAYING, 62.0, 90.5)) == "1:02.0 / 1:30.5  playing"
    assert progress_line(Progress(PlaybackState.LOADING)) == "0:00.0  loading"
