"""Which PCM format a group plays, sans-I/O: 16-bit/44.1 kHz, or 24-bit/48 kHz (hi-res).

Hi-res is opt-in per player (`hires_audio`: HomePods crackled over Wi-Fi with it in Music
Assistant) and needs AirPlay 2 buffered audio (type 103 with ALAC/48000/24: the only hi-res
format shairport-sync 5 knows; `cliap2` refuses 24-bit on realtime streams). What discovery
knows decides: the receiver's TXT features and model, through the very choice `cliap2` makes
(`choose_stream_type`). `/info` `supportedFormats` would say more, but it takes a connection
per receiver before every start, and field reports show it both understates and overstates
what devices render; buffered-capable plus the user's opt-in is the rule.

A group plays its source at 24-bit/48 kHz when a member wants hi-res and can take it, else at
16-bit/44.1 kHz. Its other members play 16-bit/44.1 kHz through one shared resampling branch
(`session/branch.py`), on the same timeline in seconds; each member that wanted hi-res and does
not get it has a note saying why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final

from airplay_provider.protocol.ap2_buffered import choose_stream_type
from airplay_provider.protocol.pcm_format import CD, HIRES, PcmFormat
from airplay_provider.protocol.txt import StreamingProtocol, TxtError, parse_features

if TYPE_CHECKING:
    from airplay_provider.session.processes import StreamTarget

#: Set (True) on the log record of a member's format note: a host that shows the notes itself
#: (the `play` command) can leave these records out.
FORMAT_NOTE: Final = "airplay_format_note"
#: The streamer's formats (protocol/pcm_format.py), by the names the session uses.
CD_FORMAT: Final = CD
HIRES_FORMAT: Final = HIRES
__all__ = [  # PcmFormat is the streamer's own, re-exported
    "CD_FORMAT",
    "FORMAT_NOTE",
    "HIRES_FORMAT",
    "FormatChoice",
    "PcmFormat",
    "format_label",
    "format_note",
    "group_format",
    "hires_obstacle",
    "member_format",
    "target_format",
    "target_in_format",
]


def _features_and_model(txt: Mapping[str, str]) -> tuple[int, str]:
    text = txt.get("features") or txt.get("ft") or "0"
    try:
        features = parse_features(text)
    except TxtError:
        features = 0
    return features, txt.get("model") or txt.get("am") or ""


def hires_obstacle(target: StreamTarget) -> str | None:
    """Why `target`'s receiver cannot play 24-bit/48 kHz (None: it can)."""
    if target.protocol is not StreamingProtocol.AIRPLAY2:
        return "it plays Classic AirPlay (RAOP), which carries 16-bit/44.1 kHz only"
    features, model = _features_and_model(target.txt)
    stream = choose_stream_type(target.ap2_stream_type, features=features, model=model)
    if stream != "buffered":
        return (
            "24-bit/48 kHz needs AirPlay 2 buffered audio, and it streams realtime "
            f"(ap2_stream_type {target.ap2_stream_type})"
        )
    return None


def member_format(group: PcmFormat, target: StreamTarget) -> PcmFormat:
    """What `target` plays in a group playing `group`: hi-res only if the group does, it opted
    in and its receiver can take it; else 16-bit/44.1 kHz."""
    if group.hires and target.hires and hires_obstacle(target) is None:
        return group
    return CD_FORMAT


def format_note(group: PcmFormat, target: StreamTarget) -> str | None:
    """For a member that wanted hi-res and does not get it: what it plays and why."""
    if not target.hires or member_format(group, target).hires:
        return None
    reason = hires_obstacle(target)
    if reason is not None:
        return f"plays {CD_FORMAT}, not hi-res: {reason}"
    return f"plays {CD_FORMAT}, not hi-res: its group plays {group}"  # (joined a 16-bit group)


@dataclass(frozen=True)
class FormatChoice:
    """A group's format, each member's, and why each member that wanted hi-res does not get
    it."""

    format: PcmFormat
    members: dict[str, PcmFormat] = field(default_factory=dict)  # member key → its format
    notes: dict[str, str] = field(default_factory=dict)  # member key → reason


def group_format(targets: Sequence[StreamTarget]) -> FormatChoice:
    """24-bit/48 kHz when a member opted in and can take it (the others play 16-bit/44.1 kHz
    through a branch); else 16-bit/44.1 kHz."""
    hires = any(t.hires and hires_obstacle(t) is None for t in targets)
    group = HIRES_FORMAT if hires else CD_FORMAT
    notes = {t.key: note for t in targets if (note := format_note(group, t)) is not None}
    return FormatChoice(group, {t.key: member_format(group, t) for t in targets}, notes)


def format_label(pcm_format: PcmFormat, note: str | None) -> str:
    """What a status line shows for a member: `24-bit/48 kHz`, `16-bit/44.1 kHz, not hi-res`."""
    return f"{pcm_format}, not hi-res" if note is not None else str(pcm_format)


def target_format(target: StreamTarget) -> PcmFormat:
    """The format `target` is set to stream."""
    return PcmFormat(target.bits, target.rate)


def target_in_format(target: StreamTarget, pcm_format: PcmFormat) -> StreamTarget:
    """`target` set to stream `pcm_format` (`cliap2 --bits --rate`)."""
    return replace(target, bits=pcm_format.bits, rate=pcm_format.rate)
