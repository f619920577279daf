"""Hi-res (24-bit/48 kHz), sans-I/O: which format a member and a group get, and the arguments
the streamers are started with."""

from __future__ import annotations

from dataclasses import replace

import pytest

from airplay_provider.config import PlayerSettings
from airplay_provider.host.cmd_discover import device_summary, format_table, play_format
from airplay_provider.host.standalone import manual_device
from airplay_provider.player import AirPlayPlayer
from airplay_provider.protocol.txt import (
    AIRPLAY_SERVICE_TYPE,
    DeviceRecord,
    StreamingProtocol,
    merge_records,
    parse_service,
)
from airplay_provider.session.pcm_format import (
    CD_FORMAT,
    HIRES_FORMAT,
    PcmFormat,
    format_note,
    group_format,
    hires_obstacle,
    member_format,
    target_in_format,
)
from airplay_provider.session.players import target_for_player
from airplay_provider.session.processes import StreamTarget, build_ap2_argv, build_raop_argv
from airplay_provider.streamer.airplay2_options import parse_options as parse_ap2

NTP = 0xE8E8E8E800000000
BUFFERED_TXT = {"features": "0x4A7FDFD5,0xBC157FDE", "model": "ShairportSync"}  # bit 40 set
NO_BIT40_TXT = {"features": "0x4A7FDFD5,0xBC157EDE", "model": "ShairportSync"}


def ap2(name: str, *, hires: bool = True, txt: dict[str, str] | None = None) -> StreamTarget:
    return StreamTarget(
        name=name,
        host="127.0.0.1",
        port=7000,
        protocol=StreamingProtocol.AIRPLAY2,
        hires=hires,
        txt=BUFFERED_TXT if txt is None else txt,
        player_id=name.lower(),
    )


def raop(name: str) -> StreamTarget:
    return StreamTarget(name=name, host="127.0.0.1", port=5000, hires=True, player_id=name.lower())


def test_formats_and_their_frames() -> None:
    assert (CD_FORMAT.bytes_per_frame, HIRES_FORMAT.bytes_per_frame) == (4, 6)
    assert (str(CD_FORMAT), str(HIRES_FORMAT)) == ("16-bit/44.1 kHz", "24-bit/48 kHz")
    assert HIRES_FORMAT.hires
    assert not CD_FORMAT.hires
    with pytest.raises(ValueError, match="bit depth must be 16 or 24, got 32"):
        PcmFormat(32, 96000)


def test_a_member_can_take_hires_only_on_ap2_buffered() -> None:
    assert hires_obstacle(ap2("Den")) is None
    assert "Classic AirPlay" in (hires_obstacle(raop("Attic")) or "")
    realtime = hires_obstacle(ap2("Den", txt=NO_BIT40_TXT))
    assert realtime is not None
    assert "buffered" in realtime
    forced = hires_obstacle(replace(ap2("Den"), ap2_stream_type="realtime"))
    assert forced is not None
    assert "ap2_stream_type realtime" in forced
    # shairport-sync 4 offers bit 40 but decodes buffered audio as AAC: realtime, no hi-res
    assert hires_obstacle(ap2("Old", txt={**BUFFERED_TXT, "model": "Shairport Sync"})) is not None
    assert hires_obstacle(ap2("TV", txt={**BUFFERED_TXT, "model": "AppleTV6,2"})) is not None


def test_a_group_is_hires_when_a_member_wants_and_can() -> None:
    both = group_format([ap2("Den"), ap2("Hall")])
    assert both.format == HIRES_FORMAT
    assert both.members == {"den": HIRES_FORMAT, "hall": HIRES_FORMAT}
    assert both.notes == {}
    plain = group_format([ap2("Den", hires=False), raop("Attic")])
    assert plain.format == CD_FORMAT
    assert plain.members == {"den": CD_FORMAT, "attic": CD_FORMAT}
    assert set(plain.notes) == {"attic"}  # it wanted hi-res; Den never asked


def test_a_mixed_group_plays_hires_where_it_can_and_says_why_elsewhere() -> None:
    choice = group_format([ap2("Den"), raop("Attic"), ap2("Hall", hires=False)])
    assert choice.format == HIRES_FORMAT  # the source is decoded at 48 kHz
    assert choice.members == {"den": HIRES_FORMAT, "attic": CD_FORMAT, "hall": CD_FORMAT}
    assert set(choice.notes) == {"attic"}  # Hall never asked for hi-res
    assert choice.notes["attic"].startswith("plays 16-bit/44.1 kHz, not hi-res: it plays Classic")


def test_a_members_format_in_a_group() -> None:
    assert member_format(HIRES_FORMAT, ap2("Den")) == HIRES_FORMAT
    assert member_format(HIRES_FORMAT, ap2("Den", hires=False)) == CD_FORMAT
    assert member_format(HIRES_FORMAT, raop("Attic")) == CD_FORMAT
    assert member_format(CD_FORMAT, ap2("Den")) == CD_FORMAT  # (joined a 16-bit group)
    assert format_note(HIRES_FORMAT, ap2("Den")) is None
    assert format_note(CD_FORMAT, ap2("Den", hires=False)) is None
    assert format_note(CD_FORMAT, ap2("Den")) == (
        "plays 16-bit/44.1 kHz, not hi-res: its group plays 16-bit/44.1 kHz"
    )
    assert "Classic AirPlay" in (format_note(HIRES_FORMAT, raop("Attic")) or "")


def test_hires_argv_asks_cliap2_for_24_bit_48k_buffered() -> None:
    cd = build_ap2_argv(ap2("Den"), NTP, "p")
    assert "--bits" not in cd  # 16/44.1: exactly the arguments cliap2 always had
    assert "--rate" not in cd
    assert "--stream-type" not in cd
    argv = build_ap2_argv(target_in_format(ap2("Den"), HIRES_FORMAT), NTP, "p")
    assert argv[argv.index("--bits") + 1] == "24"
    assert argv[argv.index("--rate") + 1] == "48000"
    assert "--stream-type" not in argv  # auto: cliap2 checks /info (refuses if not buffered)
    forced = replace(ap2("Den"), ap2_stream_type="buffered")
    argv = build_ap2_argv(target_in_format(forced, HIRES_FORMAT), NTP, "p")
    assert argv[argv.index("--stream-type") + 1] == "buffered"


def test_raop_refuses_anything_but_16_bit_44k() -> None:
    assert "-ntpstart" in build_raop_argv(raop("Attic"), NTP, "p")
    with pytest.raises(ValueError, match=r"cliraop plays 16-bit/44\.1 kHz only"):
        build_raop_argv(target_in_format(raop("Attic"), HIRES_FORMAT), NTP, "p")


def test_hires_argv_parses_with_cliap2() -> None:
    argv = build_ap2_argv(target_in_format(ap2("Den"), HIRES_FORMAT), NTP, "p")
    options = parse_ap2(argv)
    assert options.stream_type == "auto"
    assert (options.common.pcm.bits, options.common.pcm.rate) == (24, 48000)


def test_target_for_player_carries_the_hires_opt_in() -> None:
    device = manual_device("127.0.0.1", 5123, name="Den")
    assert target_for_player(AirPlayPlayer(device, PlayerSettings(hires_audio=True))).hires
    target = target_for_player(AirPlayPlayer(device, PlayerSettings()))
    assert not target.hires
    assert (target.bits, target.rate) == (16, 44100)  # the session sets the format it plays


def _ap2_device(features: str) -> DeviceRecord:
    record = parse_service(
        AIRPLAY_SERVICE_TYPE,
        "Den._airplay._tcp.local.",
        port=7000,
        addresses=["127.0.0.1"],
        properties={"deviceid": "AA:BB:CC:00:03:01", "features": features, "model": "Speaker1,1"},
    )
    return merge_records(None, record)


def test_discover_shows_the_format_play_uses() -> None:
    buffered = _ap2_device(BUFFERED_TXT["features"])
    realtime = _ap2_device(NO_BIT40_TXT["features"])
    hires = PlayerSettings(hires_audio=True)
    assert play_format(buffered) == ("16-bit/44.1 kHz", None)  # not opted in
    assert play_format(buffered, hires) == ("24-bit/48 kHz", None)
    shown, note = play_format(realtime, hires)
    assert shown == "16-bit/44.1 kHz"
    assert note is not None
    assert "buffered" in note
    summary = device_summary(realtime, lambda _: hires)
    assert (summary["format"], summary["format_note"]) == (shown, note)
    table = format_table([buffered, realtime], lambda d: hires).splitlines()
    assert table[0].split()[:3] == ["NAME", "PROTOCOL", "FORMAT"]
    assert "AIRPLAY2  24-bit/48 kHz  " in table[1]
    assert "AIRPLAY2  16-bit/44.1 kHz (hi-res not possible)" in table[2]
