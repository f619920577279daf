"""RTSP/HTTP encoding, incremental parsing, header helpers and Digest authentication."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airplay_provider.protocol.rtsp import (
    Headers,
    MessageParser,
    Request,
    Response,
    RtspError,
    RtspParseError,
    digest_authorization,
    parse_rtp_info,
    parse_transport,
    parse_www_authenticate,
)

SETUP_RESPONSE = (
    b"RTSP/1.0 200 OK\r\n"
    b"Transport: RTP/AVP/UDP;unicast;mode=record;server_port=6000;control_port=6001;"
    b"timing_port=6002\r\n"
    b"Session: 1\r\n"
    b"Audio-Jack-Status: connected; type=analog\r\n"
    b"CSeq: 3\r\n"
    b"Content-Length: 5\r\n"
    b"\r\n"
    b"hello"
)


# --- Headers ----------------------------------------------------------------------------


def test_headers_case_insensitive_ordered_multi_value() -> None:
    headers = Headers([("CSeq", "1"), ("X-A", "a1")])
    headers.add("x-a", "a2")
    assert headers.get("cseq") == "1"
    assert headers["X-a"] == "a1"
    assert headers.get_all("X-A") == ["a1", "a2"]
    assert "CSEQ" in headers
    assert "Missing" not in headers
    assert 3 not in headers
    assert headers.get("Missing") is None
    assert headers.get("Missing", "d") == "d"
    with pytest.raises(KeyError):
        headers["Missing"]
    headers.set("X-A", "only")
    assert headers.items() == [("CSeq", "1"), ("X-A", "only")]
    headers.set("New", "v")
    assert headers.items()[-1] == ("New", "v")
    headers.remove("cseq")
    assert headers.items() == [("X-A", "only"), ("New", "v")]
    assert len(headers) == 2


def test_headers_from_mapping_and_equality() -> None:
    assert Headers({"A": "1", "B": "2"}) == Headers([("A", "1"), ("B", "2")])
    assert Headers({"A": "1"}) != Headers({"A": "2"})


@pytest.mark.parametrize(
    ("name", "value"),
    [("Bad Name", "v"), ("", "v"), ("Na:me", "v"), ("X", "a\r\nInjected: 1"), ("X", "a\nb")],
)
def test_headers_reject_injection(name: str, value: str) -> None:
    with pytest.raises(RtspError):
        Headers([(name, value)])


# --- encoding ---------------------------------------------------------------------------


def test_request_encode_exact_bytes() -> None:
    request = Request(
        "OPTIONS",
        "*",
        Headers(
            [
                ("CSeq", "1"),
                ("User-Agent", "iTunes/7.6.2 (Windows; N;)"),
                ("Client-Instance", "0123456789ABCDEF"),
                ("DACP-ID", "0123456789ABCDEF"),
                ("Active-Remote", "1986535575"),
            ]
        ),
    )
    assert request.encode() == (
        b"OPTIONS * RTSP/1.0\r\n"
        b"CSeq: 1\r\n"
        b"User-Agent: iTunes/7.6.2 (Windows; N;)\r\n"
        b"Client-Instance: 0123456789ABCDEF\r\n"
        b"DACP-ID: 0123456789ABCDEF\r\n"
        b"Active-Remote: 1986535575\r\n"
        b"\r\n"
    )


def test_request_encode_adds_content_length_once() -> None:
    request = Request(
        "SET_PARAMETER",
        "rtsp://127.0.0.1/1234",
        Headers({"CSeq": "5", "Content-Type": "text/parameters"}),
        b"volume: -15.000000\r\n",
    )
    assert request.encode() == (
        b"SET_PARAMETER rtsp://127.0.0.1/1234 RTSP/1.0\r\n"
        b"CSeq: 5\r\n"
        b"Content-Type: text/parameters\r\n"
        b"Content-Length: 20\r\n"
        b"\r\n"
        b"volume: -15.000000\r\n"
    )
    assert "Content-Length" not in request.headers  # encode() does not mutate
    preset = Request("POST", "/x", Headers({"content-length": "3"}), b"abc", "HTTP/1.1")
    assert preset.encode() == b"POST /x HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc"


def test_response_encode_exact_bytes() -> None:
    response = Response(200, "OK", Headers({"CSeq": "2", "Content-Length": "99"}), b"hi")
    assert response.encode() == b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 2\r\n\r\nhi"
    assert Response(401, "Unauthorized", Headers(), protocol="HTTP/1.1").encode() == (
        b"HTTP/1.1 401 Unauthorized\r\n\r\n"
    )
    assert Response(200, "OK").ok
    assert not Response(453, "Not Enough Bandwidth").ok


@pytest.mark.parametrize(
    "message",
    [
        Request("BAD METHOD", "*"),
        Request("GET", "a b"),
        Request("GET", ""),
        Request("GET", "/", protocol="HTTP/2"),
        Response(99, "x"),
        Response(200, "OK\r\nX: y"),
    ],
)
def test_encode_rejects_invalid(message: Request | Response) -> None:
    with pytest.raises(RtspError):
        message.encode()


# --- parsing ----------------------------------------------------------------------------


def _assert_setup_response(message: Request | Response) -> None:
    assert isinstance(message, Response)
    assert (message.protocol, message.status, message.reason) == ("RTSP/1.0", 200, "OK")
    assert message.headers["session"] == "1"
    assert message.headers["Audio-Jack-Status"] == "connected; type=analog"
    assert message.headers.get_all("CSeq") == ["3"]
    assert message.body == b"hello"


def test_parse_response_split_at_every_boundary() -> None:
    for split in range(len(SETUP_RESPONSE) + 1):
        parser = MessageParser()
        first = parser.feed(SETUP_RESPONSE[:split])
        second = parser.feed(SETUP_RESPONSE[split:])
        messages = first + second
        assert len(messages) == 1, split
        _assert_setup_response(messages[0])
        assert parser.buffered == 0


def test_parse_byte_by_byte() -> None:
    parser = MessageParser()
    messages = []
    for index in range(len(SETUP_RESPONSE)):
        messages += parser.feed(SETUP_RESPONSE[index : index + 1])
        if index < len(SETUP_RESPONSE) - 1:
            assert messages == []
            assert parser.buffered > 0
    assert len(messages) == 1
    _assert_setup_response(messages[0])


def test_parse_pipelined_messages_and_round_trip() -> None:
    request = Request("POST", "/pair-setup", Headers({"CSeq": "1"}), b"\x00\x01\x02", "HTTP/1.1")
    response = Response(200, "OK", Headers({"CSeq": "1"}))
    data = request.encode() + response.encode() + SETUP_RESPONSE + b"RTSP/1.0 20"
    parser = MessageParser()
    messages = parser.feed(data)
    assert len(messages) == 3
    parsed_request = messages[0]
    assert isinstance(parsed_request, Request)
    assert (parsed_request.method, parsed_request.uri, parsed_request.protocol) == (
        "POST",
        "/pair-setup",
        "HTTP/1.1",
    )
    assert parsed_request.body == b"\x00\x01\x02"
    assert parsed_request.encode() == request.encode()
    assert messages[1] == Response(200, "OK", Headers({"CSeq": "1"}))
    _assert_setup_response(messages[2])
    assert parser.buffered == len(b"RTSP/1.0 20")


def test_parse_tolerates_bare_lf_and_leading_blank_lines() -> None:
    parser = MessageParser()
    messages = parser.feed(b"\r\n\nGET /info HTTP/1.0\nX-A:  spaced \nContent-Length: 2\n\nok")
    assert len(messages) == 1
    message = messages[0]
    assert isinstance(message, Request)
    assert message.headers["X-A"] == "spaced"
    assert message.body == b"ok"


def test_parse_status_line_without_reason_and_latin1() -> None:
    messages = MessageParser().feed(b"HTTP/1.1 204\r\nServer: caf\xe9\r\n\r\n")
    assert len(messages) == 1
    message = messages[0]
    assert isinstance(message, Response)
    assert (message.status, message.reason) == (204, "")
    assert message.headers["Server"] == "café"


@pytest.mark.parametrize(
    "data",
    [
        b"RTSP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"RTSP/1.0 200 OK\r\nContent-Length: abc\r\n\r\n",
        b"RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"RTSP/1.0 200 OK\r\nContent-Length: +5\r\n\r\n",
        b"RTSP/1.0 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"RTSP/1.0 200 OK\r\nContent-Length: 99999999999999\r\n\r\n",
        b"RTSP/1.0 2000 OK\r\n\r\n",
        b"RTSP/1.0 abc OK\r\n\r\n",
        b"RTSP/1.0 099 Low\r\n\r\n",
        b"RTSP/2.0 200 OK\r\n\r\n",
        b"HTTP/1.1\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"GET / SIP/2.0\r\n\r\n",
        b"G(T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
    ],
)
def test_parse_rejects_malformed(data: bytes) -> None:
    parser = MessageParser()
    with pytest.raises(RtspParseError):
        parser.feed(data)
    with pytest.raises(RtspParseError):
        parser.feed(b"RTSP/1.0 200 OK\r\n\r\n")  # stays failed


def test_parse_limits() -> None:
    parser = MessageParser(max_header_bytes=64)
    with pytest.raises(RtspParseError, match="header"):
        parser.feed(b"RTSP/1.0 200 OK\r\nX: " + b"a" * 100)  # no end in sight
    parser = MessageParser(max_header_bytes=64)
    with pytest.raises(RtspParseError, match="header"):
        parser.feed(b"RTSP/1.0 200 OK\r\nX: " + b"a" * 100 + b"\r\n\r\n")
    parser = MessageParser(max_body_bytes=10)
    with pytest.raises(RtspParseError, match="body"):
        parser.feed(b"RTSP/1.0 200 OK\r\nContent-Length: 11\r\n\r\n")
    parser = MessageParser(max_body_bytes=10)
    assert len(parser.feed(b"RTSP/1.0 200 OK\r\nContent-Length: 10\r\n\r\n0123456789")) == 1


@settings(max_examples=300)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=4))
def test_fuzz_random_bytes_only_parse_errors(data: bytes, cuts: list[int]) -> None:
    parser = MessageParser(max_header_bytes=256, max_body_bytes=64)
    edges = [0, *sorted(cut % (len(data) + 1) for cut in cuts), len(data)]
    try:
        for start, end in itertools.pairwise(edges):
            for message in parser.feed(data[start:end]):
                assert isinstance(message, Request | Response)
    except RtspParseError:
        pass


_FRAGMENTS = [
    b"RTSP/1.0 ",
    b"HTTP/1.1 ",
    b"200 OK",
    b"GET / ",
    b"OPTIONS * RTSP/1.0",
    b"\r\n",
    b"\n",
    b"\r",
    b":",
    b" ",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked",
    b"CSeq",
    b"5",
    b"-3",
    b"\x00",
    b"\xff",
    b"\t",
]


@settings(max_examples=400)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=40), st.integers(0, 400))
def test_fuzz_structured_only_parse_errors(parts: list[bytes], cut: int) -> None:
    data = b"".join(parts)
    cut %= len(data) + 1
    parser = MessageParser(max_header_bytes=200, max_body_bytes=32)
    try:
        parser.feed(data[:cut])
        parser.feed(data[cut:])
    except RtspParseError:
        pass


@given(
    st.sampled_from(["OPTIONS", "ANNOUNCE", "SETUP", "RECORD", "SET_PARAMETER", "POST"]),
    st.from_regex(r"[!-~]{1,30}", fullmatch=True),
    st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True).filter(
                lambda name: name.lower() not in ("content-length", "transfer-encoding")
            ),
            st.from_regex(r"[!-~]([ !-~]{0,20}[!-~])?", fullmatch=True),
        ),
        max_size=6,
    ),
    st.binary(max_size=200),
)
def test_encode_parse_round_trip(
    method: str, uri: str, items: list[tuple[str, str]], body: bytes
) -> None:
    request = Request(method, uri, Headers(items), body)
    messages = MessageParser().feed(request.encode())
    assert len(messages) == 1
    parsed = messages[0]
    assert isinstance(parsed, Request)
    assert (parsed.method, parsed.uri, parsed.body) == (method, uri, body)
    expected = items + ([("Content-Length", str(len(body)))] if body else [])
    assert parsed.headers.items() == expected


# --- header helpers ---------------------------------------------------------------------


def test_parse_transport() -> None:
    value = "RTP/AVP/UDP;unicast;mode=record;server_port=6000;control_port=6001;timing_port=0"
    assert parse_transport(value) == {
        "RTP/AVP/UDP": "",
        "unicast": "",
        "mode": "record",
        "server_port": "6000",
        "control_port": "6001",
        "timing_port": "0",
    }
    assert parse_transport(" RTP/AVP/UDP ; interleaved=0-1 ;; ") == {
        "RTP/AVP/UDP": "",
        "interleaved": "0-1",
    }
    assert parse_transport("") == {}


def test_parse_rtp_info() -> None:
    assert parse_rtp_info("seq=1;rtptime=2") == {"seq": 1, "rtptime": 2}
    assert parse_rtp_info("rtptime=4294967295") == {"rtptime": 4294967295}
    assert parse_rtp_info("url=rtsp://127.0.0.1/1;seq=7; rtptime=9") == {"seq": 7, "rtptime": 9}
    with pytest.raises(RtspParseError):
        parse_rtp_info("seq=abc;rtptime=2")
    with pytest.raises(RtspParseError):
        parse_rtp_info("seq=1;rtptime=-2")


def test_parse_www_authenticate() -> None:
    assert parse_www_authenticate('Digest realm="raop", nonce="abc"') == {
        "scheme": "Digest",
        "realm": "raop",
        "nonce": "abc",
    }
    assert parse_www_authenticate('Digest Realm="a, b",nonce=xyz==, stale="q\\"x"') == {
        "scheme": "Digest",
        "realm": "a, b",
        "nonce": "xyz==",
        "stale": 'q"x',
    }
    assert parse_www_authenticate("Basic") == {"scheme": "Basic"}


@pytest.mark.parametrize(
    "value", ["", 'Digest realm="unterminated', "Digest realm", 'Digest ="x"', "Di(gest a=b"]
)
def test_parse_www_authenticate_rejects(value: str) -> None:
    with pytest.raises(RtspParseError):
        parse_www_authenticate(value)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_digest_authorization_matches_rfc2069() -> None:
    uri = "rtsp://127.0.0.1/3413821438"
    value = digest_authorization(
        method="ANNOUNCE",
        uri=uri,
        username="iTunes",
        password="secret",
        realm="raop",
        nonce="9d4b6e4f2a1c0b37",
    )
    ha1 = _md5("iTunes:raop:secret")
    ha2 = _md5(f"ANNOUNCE:{uri}")
    expected_response = _md5(f"{ha1}:9d4b6e4f2a1c0b37:{ha2}")
    assert expected_response == "d3d16ad3b2292d17a887eacc46898a66"  # computed once, by hand
    assert value == (
        'Digest username="iTunes", realm="raop", nonce="9d4b6e4f2a1c0b37", '
        f'uri="{uri}", response="d3d16ad3b2292d17a887eacc46898a66"'
    )


def test_digest_uppercase_quirk_and_quoting() -> None:
    value = digest_authorization(
        method="OPTIONS",
        uri="*",
        username="",
        password="",
        realm="raop",
        nonce="abc",
        uppercase_hex=True,
    )
    ha1 = _md5(":raop:").upper()
    ha2 = _md5("OPTIONS:*").upper()
    assert value.endswith(f'response="{_md5(f"{ha1}:abc:{ha2}").upper()}"')
    assert 'username=""' in value
    quoted = digest_authorization(
        method="GET", uri="/", username='a"b', password="p", realm="r", nonce="n"
    )
    assert 'username="a\\"b"' in quoted
    assert parse_www_authenticate(quoted)["username"] == 'a"b'
    with pytest.raises(RtspError):
        digest_authorization(
            method="GET", uri="/", username="a\r\nb", password="", realm="r", nonce="n"
        )


@pytest.mark.parametrize(
    "head",
    [
        b"RTSP/1.0 2" + b"x" * 16384,
        b"GARBAGE " * 2000,
        b"X" * 16000,
        b"RTSP/1.0 200 OK\r\n" + b"y" * 9000,
    ],
)
def test_parse_errors_quote_a_bounded_excerpt_of_the_peer_text(head: bytes) -> None:
    parser = MessageParser(max_header_bytes=65536)
    with pytest.raises(RtspParseError) as caught:
        parser.feed(head + b"\r\n\r\n")
    assert len(str(caught.value)) < 200
