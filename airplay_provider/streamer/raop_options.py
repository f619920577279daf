"""Command line of `cliraop`: Music Assistant's argument list (ARCHITECTURE.md §3a), strict."""

from __future__ import annotations

import argparse
import ipaddress
from dataclasses import dataclass

from airplay_provider.protocol.errors import AirplayError
from airplay_provider.protocol.pcm_format import CD, PcmFormat
from airplay_provider.streamer.secret_input import SecretInputError, merge_secrets

DEFAULT_LATENCY_MS = 1000
MIN_LATENCY_MS = 200
MAX_LATENCY_MS = 4000


class UsageError(AirplayError):
    """Bad command line; the message says what is wrong."""


@dataclass(frozen=True)
class RaopOptions:
    """Everything `cliraop` was asked to do."""

    host: str
    port: int
    ntpstart: int | None
    latency_ms: int
    volume: int | None
    bind_address: str | None
    encrypt: bool
    alac: bool
    encryption_types: frozenset[int]
    metadata_types: frozenset[int]
    model: str
    device_pk: str
    password_required: bool | None
    password: str | None
    secret: str | None
    debug: int
    dacp_id: str | None
    active_remote: str | None
    cmdpipe: str | None
    udn: str | None
    source: str
    #: Other addresses of the same receiver, tried in order when `host` does not answer.
    fallback_hosts: tuple[str, ...] = ()
    #: What stdin carries (RAOP: always 16/44100; cliap2 --bits/--rate).
    pcm: PcmFormat = CD

    @property
    def use_encryption(self) -> bool:
        """RSA/AES only when asked to and the receiver lists type 1 (libraop's rule)."""
        return self.encrypt and 1 in self.encryption_types


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _int_list(text: str) -> frozenset[int]:
    values: set[int] = set()
    for raw in text.replace(";", ",").split(","):
        part = raw.strip()
        if part:
            if not part.isdigit():
                raise UsageError(f"expected a comma-separated list of numbers, got {text!r}")
            values.add(int(part))
    return frozenset(values)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser (single-dash long options, as libraop's cliraop takes them)."""
    parser = _Parser(
        prog="cliraop",
        description="Stream s16le 44.1 kHz stereo PCM from stdin to a RAOP (AirPlay 1) receiver.",
        allow_abbrev=False,
    )
    parser.add_argument("-ntpstart", type=int, help="NTP 32.32 instant the first sample is audible")
    parser.add_argument("-port", type=int, default=5000, help="receiver RTSP port")
    parser.add_argument("-latency", type=int, default=DEFAULT_LATENCY_MS, help="send-ahead, ms")
    parser.add_argument("-volume", type=int, help="initial volume 0..100")
    parser.add_argument("-if", dest="bind_address", help="local address to send from")
    parser.add_argument("-encrypt", action="store_true", help="RSA/AES if TXT et contains 1")
    parser.add_argument(
        "-alac",
        action="store_true",
        help="compress the audio (ALAC); else uncompressed ALAC frames",
    )
    parser.add_argument("-et", default="", help="TXT et (encryption types)")
    parser.add_argument("-md", default="", help="TXT md (metadata types)")
    parser.add_argument("-am", default="", help="TXT am (model)")
    parser.add_argument("-pk", default="", help="TXT pk")
    parser.add_argument("-pw", default="", help="TXT pw")
    parser.add_argument("-password", help="receiver password (plain text)")
    parser.add_argument("-secret", help="legacy pairing secret (hex)")
    parser.add_argument(
        "-secretsfd", type=int, help="read password/secret/active_remote from this fd (key=value)"
    )
    parser.add_argument("-debug", type=int, default=3, help="log level 0..9")
    parser.add_argument("-dacp", help="DACP id (16 hex)")
    parser.add_argument("-activeremote", help="Active-Remote token (decimal)")
    parser.add_argument("-cmdpipe", help="command FIFO path (created and removed by us)")
    parser.add_argument("-udn", help="receiver service name")
    parser.add_argument("-wait", type=int, default=0, help="extra ms added to -ntpstart")
    parser.add_argument(
        "-fallback", default="", help="other addresses of the receiver, comma-separated"
    )
    parser.add_argument("host", help="receiver address")
    parser.add_argument("source", nargs="?", default="-", help="'-' for stdin (only)")
    return parser


def parse_options(argv: list[str]) -> RaopOptions:
    """Parse and validate; raises UsageError with a clear message."""
    ns = build_parser().parse_args(argv)
    if ns.source != "-":
        raise UsageError("only '-' (stdin) is supported as the audio source")
    if not 1 <= ns.port <= 65535:
        raise UsageError(f"-port must be 1..65535, got {ns.port}")
    if not MIN_LATENCY_MS <= ns.latency <= MAX_LATENCY_MS:
        raise UsageError(
            f"-latency must be {MIN_LATENCY_MS}..{MAX_LATENCY_MS} ms, got {ns.latency}"
        )
    if ns.volume is not None and not 0 <= ns.volume <= 100:
        raise UsageError(f"-volume must be 0..100, got {ns.volume}")
    ntpstart = ns.ntpstart
    if ntpstart is not None:
        if not 0 < ntpstart < 2**64:
            raise UsageError("-ntpstart must be a 64-bit NTP timestamp")
        ntpstart += (ns.wait * 2**32) // 1000
    pw = ns.pw.strip().lower()
    try:
        secrets = merge_secrets(
            ns.secretsfd,
            {"password": ns.password, "secret": ns.secret, "active_remote": ns.activeremote},
        )
    except SecretInputError as exc:
        raise UsageError(str(exc)) from exc
    return RaopOptions(
        host=ns.host,
        port=ns.port,
        ntpstart=ntpstart,
        latency_ms=ns.latency,
        volume=ns.volume,
        bind_address=ns.bind_address,
        encrypt=ns.encrypt,
        alac=ns.alac,
        encryption_types=_int_list(ns.et),
        metadata_types=_int_list(ns.md),
        model=ns.am,
        device_pk=ns.pk,
        password_required=None if not pw else pw in ("true", "1", "yes"),
        password=secrets.get("password"),
        secret=secrets.get("secret"),
        debug=max(0, min(9, ns.debug)),
        dacp_id=ns.dacp,
        active_remote=secrets.get("active_remote"),
        cmdpipe=ns.cmdpipe,
        udn=ns.udn,
        source=ns.source,
        fallback_hosts=parse_fallbacks("-fallback", ns.fallback),
    )


def parse_fallbacks(flag: str, text: str) -> tuple[str, ...]:
    """`ADDR,ADDR,...` → the IP addresses, in order; UsageError for anything else."""
    addresses: list[str] = []
    for raw in text.split(","):
        part = raw.strip().strip("[]")
        if not part:
            continue
        try:
            addresses.append(str(ipaddress.ip_address(part)))
        except ValueError:
            raise UsageError(f"{flag}: {part!r} is not an IP address") from None
    return tuple(addresses)
