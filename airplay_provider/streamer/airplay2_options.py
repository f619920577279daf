"""Command line of `cliap2`: Music Assistant's GNU long options (ARCHITECTURE.md §3b), strict.

The fields `cliap2` shares with `cliraop` are carried as a `RaopOptions`, so the shared engine
(pacing, FIFO commands, drain) reads them the same way for both protocols.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from typing import Literal

from airplay_provider.protocol.ap2_buffered import STREAM_FORMATS, StreamChoice
from airplay_provider.protocol.hap.credentials import HapCredentials
from airplay_provider.protocol.hap.errors import InvalidCredentials
from airplay_provider.protocol.pcm_format import CD, SUPPORTED_BITS, SUPPORTED_RATES, PcmFormat
from airplay_provider.streamer.raop_options import RaopOptions, UsageError, parse_fallbacks
from airplay_provider.streamer.secret_input import SecretInputError, merge_secrets

DEFAULT_LATENCY_MS = 250
MIN_LATENCY_MS = 100
MAX_LATENCY_MS = 4000
TimingChoice = Literal["auto", "ptp", "ntp"]


@dataclass(frozen=True)
class Ap2Options:
    """Everything `cliap2` was asked to do beyond the shared streamer options."""

    common: RaopOptions
    name: str
    hostname: str
    txt: dict[str, str]
    credentials: HapCredentials | None
    timing: TimingChoice
    pairing_id: str
    credentials_out: str | None = None
    stream_type: StreamChoice = "auto"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def parse_txt(text: str) -> dict[str, str]:
    """`"k=v" "k2=v2" ` (every pair double-quoted) → dict; keys lower-cased."""
    result: dict[str, str] = {}
    try:
        tokens = shlex.split(text, posix=False)
    except ValueError as exc:
        raise UsageError(f"--txt: {exc}") from exc
    for token in tokens:
        if len(token) < 2 or not (token.startswith('"') and token.endswith('"')):
            raise UsageError(f"--txt items must be double-quoted, got {token!r}")
        key, sep, value = token[1:-1].partition("=")
        if not sep or not key or "=" in value:
            raise UsageError(f"--txt item must be one key=value, got {token!r}")
        result[key.strip().lower()] = value.strip()
    return result


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser (GNU long options, as cliairplay's cliap2 takes them)."""
    parser = _Parser(
        prog="cliap2",
        description="Stream stereo PCM (s16le 44.1 kHz, or s24le 48 kHz with --bits 24 --rate "
        "48000) from stdin to an AirPlay 2 receiver.",
        allow_abbrev=False,
    )
    add = parser.add_argument
    add("--name", required=True, help="receiver display name")
    add("--hostname", required=True, help="receiver mDNS host name")
    add("--address", required=True, help="receiver IP address")
    add("--port", type=int, required=True, help="receiver _airplay port")
    add("--txt", required=True, help='_airplay TXT as "k=v" tokens')
    add("--ntpstart", type=int, help="NTP 32.32 instant the first sample is audible")
    add("--volume", type=int, help="initial volume 0..100")
    add("--loglevel", type=int, default=3, help="log level 0..9")
    add("--dacp_id", help="DACP id (16 hex), also our pairing identity")
    add("--active_remote", help="Active-Remote token (decimal)")
    add("--pipe", required=True, help="'-' for stdin (only)")
    add("--command_pipe", help="command FIFO path (created and removed by us)")
    add("--latency", type=int, default=DEFAULT_LATENCY_MS, help="send-ahead, ms")
    add("--auth", help="stored HAP credentials (192 hex) for pair-verify")
    add("--secrets_fd", type=int, help="read auth/active_remote from this fd (key=value lines)")
    add(
        "--credentials_out",
        help="file (created 0600) that receives new credentials after PIN pairing",
    )
    add("--timing", choices=("auto", "ptp", "ntp"), default="auto", help="timing protocol")
    add(
        "--stream-type",
        dest="stream_type",
        choices=("auto", "realtime", "buffered"),
        default="auto",
        help="AirPlay 2 stream: realtime (96) or buffered (103); auto: buffered when the "
        "receiver offers it (feature bit 40) and is not an Apple model",
    )
    add(
        "--alac",
        nargs="?",
        choices=("on", "off"),
        const="on",
        default="off",
        help="on: compressed ALAC (saves ~40 %% bandwidth, costs CPU); off (default): uncompressed",
    )
    add(
        "--bits",
        type=int,
        choices=SUPPORTED_BITS,
        default=16,
        help="stdin sample size: 16 (s16le) or 24 (s24le, 3 bytes a sample)",
    )
    add(
        "--rate",
        type=int,
        choices=SUPPORTED_RATES,
        default=44100,
        help="stdin sample rate; 24/48000 needs a buffered stream (ALAC/48000/24)",
    )
    add("--bind", dest="bind_address", help="local address to send from")
    add(
        "--fallback_address",
        default="",
        help="other addresses of the receiver, comma-separated, tried when --address fails",
    )
    return parser


def parse_options(argv: list[str]) -> Ap2Options:
    """Parse and validate; raises UsageError with a clear message."""
    ns = build_parser().parse_args(argv)
    if ns.pipe != "-":
        raise UsageError("only '--pipe -' (stdin) is supported as the audio source")
    if not 1 <= ns.port <= 65535:
        raise UsageError(f"--port must be 1..65535, got {ns.port}")
    if not MIN_LATENCY_MS <= ns.latency <= MAX_LATENCY_MS:
        raise UsageError(f"--latency must be {MIN_LATENCY_MS}..{MAX_LATENCY_MS} ms")
    if ns.volume is not None and not 0 <= ns.volume <= 100:
        raise UsageError(f"--volume must be 0..100, got {ns.volume}")
    if ns.ntpstart is not None and not 0 < ns.ntpstart < 2**64:
        raise UsageError("--ntpstart must be a 64-bit NTP timestamp")
    pcm = PcmFormat(bits=ns.bits, rate=ns.rate)
    check_format(pcm, ns.stream_type)
    try:
        secrets = merge_secrets(ns.secrets_fd, {"auth": ns.auth, "active_remote": ns.active_remote})
    except SecretInputError as exc:
        raise UsageError(str(exc)) from exc
    unused = sorted(secrets.keys() - {"auth", "active_remote"})
    if unused:
        raise UsageError(f"cliap2 takes no {', '.join(unused)} in its secrets input")
    credentials = None
    if "auth" in secrets:
        try:
            credentials = HapCredentials.parse(secrets["auth"])
        except InvalidCredentials as exc:
            raise UsageError(f"--auth: {exc}") from exc
    dacp_id = (ns.dacp_id or "").upper() or None
    if dacp_id is not None and (len(dacp_id) != 16 or not _is_hex(dacp_id)):
        raise UsageError(f"--dacp_id must be 16 hex characters, got {ns.dacp_id!r}")
    common = RaopOptions(
        host=ns.address,
        port=ns.port,
        ntpstart=ns.ntpstart,
        latency_ms=ns.latency,
        volume=ns.volume,
        bind_address=ns.bind_address,
        encrypt=True,
        alac=ns.alac == "on",
        encryption_types=frozenset(),
        metadata_types=frozenset({0, 1, 2}),
        model="",
        device_pk="",
        password_required=None,
        password=None,
        secret=None,
        debug=max(0, min(9, ns.loglevel)),
        dacp_id=dacp_id,
        active_remote=secrets.get("active_remote"),
        cmdpipe=ns.command_pipe,
        udn=ns.hostname,
        source=ns.pipe,
        fallback_hosts=parse_fallbacks("--fallback_address", ns.fallback_address),
        pcm=pcm,
    )
    return Ap2Options(
        common=common,
        name=ns.name,
        hostname=ns.hostname,
        txt=parse_txt(ns.txt),
        credentials=credentials,
        timing=ns.timing,
        pairing_id=dacp_id or "",
        credentials_out=ns.credentials_out,
        stream_type=ns.stream_type,
    )


def check_format(pcm: PcmFormat, stream_type: StreamChoice) -> None:
    """Only the formats a receiver can play: ALAC 44100/16 (realtime or buffered) and ALAC
    48000/24 (buffered only; shairport-sync 5 knows no other ALAC encoding, and a realtime
    stream is always 44100/16 there)."""
    if pcm not in STREAM_FORMATS:
        raise UsageError(
            f"--bits {pcm.bits} --rate {pcm.rate} is not an AirPlay 2 audio format: use "
            "--bits 16 --rate 44100, or --bits 24 --rate 48000 (buffered streams only)"
        )
    if pcm != CD and stream_type == "realtime":
        raise UsageError(
            f"--bits {pcm.bits} --rate {pcm.rate} needs a buffered stream "
            "(--stream-type buffered or auto); realtime streams are 16/44100"
        )


def _is_hex(text: str) -> bool:
    return all(char in "0123456789ABCDEF" for char in text)
