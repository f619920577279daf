"""RTSP/HTTP message encoding and incremental parsing, both directions, no I/O.

Feed received bytes to :class:`MessageParser` in chunks of any size and get back complete
:class:`Request` / :class:`Response` objects; call ``encode()`` on a message to get the bytes
to send. Bodies are delimited by Content-Length only (RAOP never uses chunked encoding).
Also: Transport / RTP-Info header parsing and RFC 2069 Digest authentication (protocol.md A.15).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from airplay_provider.protocol.errors import AirplayError

PROTOCOLS = frozenset({"RTSP/1.0", "HTTP/1.0", "HTTP/1.1"})

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")
_DIGITS = re.compile(r"[0-9]+")


class RtspError(AirplayError):
    """Base class of every error raised by this module."""


class RtspParseError(RtspError):
    """Received bytes that are not a well-formed RTSP/HTTP message (or exceed a limit)."""


def _check_header(name: str, value: str) -> None:
    if not _TOKEN.fullmatch(name):
        raise RtspError(f"invalid header name {name!r}")
    if _FORBIDDEN_IN_VALUE.search(value):
        raise RtspError(f"invalid characters in the value of header {name!r}")


class Headers:
    """Ordered, case-insensitive, multi-valued message headers."""

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            self.add(name, value)

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of ``name``, or ``default``."""
        key = name.lower()
        for item_name, value in self._items:
            if item_name.lower() == key:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        key = name.lower()
        return [value for item_name, value in self._items if item_name.lower() == key]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` by one value (kept at the first one's place)."""
        _check_header(name, value)
        key = name.lower()
        position = next(
            (i for i, (item_name, _) in enumerate(self._items) if item_name.lower() == key),
            len(self._items),
        )
        self.remove(name)
        self._items.insert(position, (name, value))

    def add(self, name: str, value: str) -> None:
        """Append one more value of ``name``."""
        _check_header(name, value)
        self._items.append((name, value))

    def remove(self, name: str) -> None:
        """Drop every value of ``name`` (no error when absent)."""
        key = name.lower()
        self._items = [item for item in self._items if item[0].lower() != key]

    def items(self) -> list[tuple[str, str]]:
        """All (name, value) pairs in order."""
        return list(self._items)

    def copy(self) -> Headers:
        """An independent copy."""
        return Headers(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._items == other._items

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def encode(self) -> bytes:
        """``Name: value`` lines, each ending in CRLF."""
        return "".join(f"{name}: {value}\r\n" for name, value in self._items).encode()


def _encode_message(start_line: str, headers: Headers, body: bytes) -> bytes:
    return start_line.encode() + b"\r\n" + headers.encode() + b"\r\n" + body


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise RtspError(f"unsupported protocol {protocol!r}")


@dataclass
class Request:
    """An RTSP or HTTP request."""

    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    protocol: str = "RTSP/1.0"

    def encode(self) -> bytes:
        """Wire bytes; Content-Length is added when there is a body and it is not set."""
        if not _TOKEN.fullmatch(self.method):
            raise RtspError(f"invalid method {self.method!r}")
        if not self.uri or any(ch.isspace() for ch in self.uri) or "\x00" in self.uri:
            raise RtspError(f"invalid request URI {self.uri!r}")
        _check_protocol(self.protocol)
        headers = self.headers
        if self.body and "Content-Length" not in headers:
            headers = headers.copy()
            headers.add("Content-Length", str(len(self.body)))
        return _encode_message(f"{self.method} {self.uri} {self.protocol}", headers, self.body)


@dataclass
class Response:
    """An RTSP or HTTP response."""

    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    protocol: str = "RTSP/1.0"

    def encode(self) -> bytes:
        """Wire bytes; Content-Length always matches the body when there is one."""
        if not 100 <= self.status <= 999:
            raise RtspError(f"invalid status {self.status}")
        if _FORBIDDEN_IN_VALUE.search(self.reason):
            raise RtspError(f"invalid reason phrase {self.reason!r}")
        _check_protocol(self.protocol)
        headers = self.headers
        if self.body:
            headers = headers.copy()
            headers.set("Content-Length", str(len(self.body)))
        start = f"{self.protocol} {self.status} {self.reason}".rstrip(" ")
        return _encode_message(start, headers, self.body)

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


Message = Request | Response


def _decode_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


#: The most of a peer's text an error message quotes (a hostile line may be 16 kB).
QUOTE_LIMIT = 80


def _excerpt(text: str) -> str:
    """`text` as repr, cut to `QUOTE_LIMIT` characters (errors end up in status lines)."""
    if len(text) <= QUOTE_LIMIT:
        return repr(text)
    return f"{text[:QUOTE_LIMIT]!r}… ({len(text)} chars)"


def _parse_start_line(line: str) -> Request | Response:
    if line.startswith(("RTSP/", "HTTP/")):
        protocol, _, rest = line.partition(" ")
        status_text, _, reason = rest.partition(" ")
        if protocol not in PROTOCOLS:
            raise RtspParseError(f"unsupported protocol in status line {_excerpt(line)}")
        if len(status_text) != 3 or not _DIGITS.fullmatch(status_text):
            raise RtspParseError(f"bad status code in status line {_excerpt(line)}")
        status = int(status_text)
        if status < 100:
            raise RtspParseError(f"bad status code in status line {_excerpt(line)}")
        return Response(status, reason.strip(), Headers(), b"", protocol)
    parts = line.split(" ")
    if len(parts) != 3:
        raise RtspParseError(f"bad request line {_excerpt(line)}")
    method, uri, protocol = parts
    if not _TOKEN.fullmatch(method):
        raise RtspParseError(f"bad method in request line {_excerpt(line)}")
    if not uri or any(ch.isspace() for ch in uri):
        raise RtspParseError(f"bad URI in request line {_excerpt(line)}")
    if protocol not in PROTOCOLS:
        raise RtspParseError(f"unsupported protocol in request line {_excerpt(line)}")
    return Request(method, uri, Headers(), b"", protocol)


def _parse_header_line(line: str) -> tuple[str, str]:
    if line[:1] in (" ", "\t"):
        raise RtspParseError("folded header lines are not supported")
    name, colon, value = line.partition(":")
    if not colon:
        raise RtspParseError(f"header line without ':': {_excerpt(line)}")
    if not _TOKEN.fullmatch(name):
        raise RtspParseError(f"bad header name {_excerpt(name)}")
    value = value.strip(" \t")
    if _FORBIDDEN_IN_VALUE.search(value):
        raise RtspParseError(f"bad characters in header {_excerpt(name)}")
    return name, value


def _content_length(headers: Headers, max_body_bytes: int) -> int:
    values = {value.strip() for value in headers.get_all("Content-Length")}
    if not values:
        return 0
    if len(values) > 1:
        raise RtspParseError("conflicting Content-Length headers")
    text = values.pop()
    if not _DIGITS.fullmatch(text) or len(text) > 12:
        raise RtspParseError(f"bad Content-Length {_excerpt(text)}")
    length = int(text)
    if length > max_body_bytes:
        raise RtspParseError(f"body of {length} bytes exceeds the {max_body_bytes}-byte limit")
    return length


class MessageParser:
    """Incremental parser: accepts arbitrary splits and several pipelined messages."""

    def __init__(self, *, max_header_bytes: int = 16384, max_body_bytes: int = 8 * 2**20) -> None:
        self._max_header_bytes = max_header_bytes
        self._max_body_bytes = max_body_bytes
        self._buffer = bytearray()
        self._scan_from = 0
        self._pending: Request | Response | None = None
        self._body_length = 0
        self._pending_head_bytes = 0
        self._failed: RtspParseError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a message (0 between messages)."""
        return self._pending_head_bytes + len(self._buffer)

    def feed(self, data: bytes) -> list[Request | Response]:
        """Add received bytes; return the messages they complete (maybe none)."""
        if self._failed is not None:
            raise RtspParseError(f"parser unusable after an earlier error: {self._failed}")
        self._buffer += data
        messages: list[Request | Response] = []
        try:
            while True:
                message = self._next_message()
                if message is None:
                    return messages
                messages.append(message)
        except RtspParseError as err:
            self._failed = err
            raise
        except (ValueError, UnicodeError) as err:  # defensive: never leak another type
            self._failed = RtspParseError(str(err))
            raise self._failed from err

    def _next_message(self) -> Request | Response | None:
        if self._pending is None and not self._parse_head():
            return None
        if len(self._buffer) < self._body_length:
            return None
        message = self._pending
        if message is None:  # pragma: no cover - _parse_head() just set it
            return None
        message.body = bytes(self._buffer[: self._body_length])
        del self._buffer[: self._body_length]
        self._pending = None
        self._body_length = 0
        self._pending_head_bytes = 0
        return message

    def _skip_leading_blank_lines(self) -> None:
        start = 0
        while True:
            if self._buffer.startswith(b"\r\n", start):
                start += 2
            elif self._buffer.startswith(b"\n", start):
                start += 1
            else:
                break
        if start:
            del self._buffer[:start]
            self._scan_from = 0

    def _find_head_end(self) -> tuple[int, int] | None:
        """(end of the header section, start of the body) or None if not complete yet."""
        buffer = self._buffer
        position = buffer.find(b"\n", self._scan_from)
        while position != -1:
            if buffer.startswith(b"\r\n", position + 1):
                return position, position + 3
            if buffer.startswith(b"\n", position + 1):
                return position, position + 2
            if position + 1 >= len(buffer) or (
                position + 2 >= len(buffer) and buffer[position + 1] == 0x0D
            ):
                break  # may be completed by the next feed
            position = buffer.find(b"\n", position + 1)
        self._scan_from = max(0, len(buffer) - 2)
        return None

    def _parse_head(self) -> bool:
        self._skip_leading_blank_lines()
        found = self._find_head_end()
        if found is None:
            if len(self._buffer) > self._max_header_bytes:
                raise RtspParseError(f"header section exceeds {self._max_header_bytes} bytes")
            return False
        head_end, body_start = found
        if head_end > self._max_header_bytes:
            raise RtspParseError(f"header section exceeds {self._max_header_bytes} bytes")
        lines = _decode_text(bytes(self._buffer[:head_end])).split("\n")
        lines = [line.removesuffix("\r") for line in lines]
        message = _parse_start_line(lines[0])
        for line in lines[1:]:
            name, value = _parse_header_line(line)
            message.headers.add(name, value)
        if "Transfer-Encoding" in message.headers:
            raise RtspParseError("Transfer-Encoding is not supported")
        self._body_length = _content_length(message.headers, self._max_body_bytes)
        del self._buffer[:body_start]
        self._scan_from = 0
        self._pending = message
        self._pending_head_bytes = body_start
        return True


def parse_transport(value: str) -> dict[str, str]:
    """Transport header → {key: value}; bare flags (``unicast``, ``RTP/AVP/UDP``) map to ""."""
    result: dict[str, str] = {}
    for part in value.split(";"):
        key, _, item = part.strip().partition("=")
        key = key.strip()
        if key:
            result[key] = item.strip()
    return result


def parse_rtp_info(value: str) -> dict[str, int]:
    """RTP-Info header → its integer fields, e.g. ``seq=1;rtptime=2`` → {seq: 1, rtptime: 2}.

    Non-numeric fields such as ``url=`` are ignored; a non-numeric seq or rtptime raises
    RtspParseError.
    """
    result: dict[str, int] = {}
    for part in value.split(";"):
        key, _, item = part.strip().partition("=")
        key, item = key.strip(), item.strip()
        if _DIGITS.fullmatch(item) and len(item) <= 20:
            result[key] = int(item)
        elif key in ("seq", "rtptime"):
            raise RtspParseError(f"bad {key} in RTP-Info {value!r}")
    return result


_AUTH_PARAM = re.compile(
    r"\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*"
    r"(?:\"((?:[^\"\\]|\\.)*)\"|([!#$%&'*+\-.^_`|~0-9A-Za-z/=:]+))\s*(?:,|$)"
)


def parse_www_authenticate(value: str) -> dict[str, str]:
    """``Digest realm="raop", nonce="abc"`` → {"scheme": "Digest", "realm": ..., "nonce": ...}.

    Parameter names are lower-cased; RtspParseError when the value is malformed.
    """
    text = value.strip()
    scheme, _, rest = text.partition(" ")
    if not _TOKEN.fullmatch(scheme):
        raise RtspParseError(f"bad authentication scheme in {value!r}")
    result = {"scheme": scheme}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _AUTH_PARAM.match(rest, position)
        if match is None or match.end() == position:
            raise RtspParseError(f"bad authentication parameters in {value!r}")
        name, quoted, bare = match.groups()
        result[name.lower()] = (
            re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else (bare or "")
        )
        position = match.end()
    return result


def _quote(value: str) -> str:
    if _FORBIDDEN_IN_VALUE.search(value):
        raise RtspError("line breaks are not allowed in Digest parameters")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _md5_hex(text: str, uppercase: bool) -> str:
    digest = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
    return digest.upper() if uppercase else digest


def digest_response(
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    uppercase_hex: bool = False,
) -> str:
    """The RFC 2069 response hash: MD5(HA1:nonce:HA2) with HA1 = MD5(user:realm:pw)."""
    ha1 = _md5_hex(f"{username}:{realm}:{password}", uppercase_hex)
    ha2 = _md5_hex(f"{method}:{uri}", uppercase_hex)
    return _md5_hex(f"{ha1}:{nonce}:{ha2}", uppercase_hex)


def digest_authorization(
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    uppercase_hex: bool = False,
) -> str:
    """Full Authorization header value for RFC 2069 Digest (no qop).

    ``uppercase_hex`` reproduces the upper-case digests an AirPort Express gen 1 expects.
    """
    response = digest_response(
        method=method,
        uri=uri,
        username=username,
        password=password,
        realm=realm,
        nonce=nonce,
        uppercase_hex=uppercase_hex,
    )
    return (
        f"Digest username={_quote(username)}, realm={_quote(realm)}, "
        f"nonce={_quote(nonce)}, uri={_quote(uri)}, response={_quote(response)}"
    )
