"""ANNOUNCE SDP bodies, compared line by line with docs/protocol.md A.5."""

from __future__ import annotations

import pytest

from airplay_provider.protocol.sdp import announce_sdp


def test_alac_clear_exact() -> None:
    sdp = announce_sdp(session_id=3413821438, sender_ip="127.0.0.1", receiver_ip="127.0.0.2")
    assert sdp == (
        "v=0\r\n"
        "o=iTunes 3413821438 0 IN IP4 127.0.0.1\r\n"
        "s=iTunes\r\n"
        "c=IN IP4 127.0.0.2\r\n"
        "t=0 0\r\n"
        "m=audio 0 RTP/AVP 96\r\n"
        "a=rtpmap:96 AppleLossless\r\n"
        "a=fmtp:96 352 0 16 40 10 14 2 255 0 0 44100\r\n"
    )


def test_pcm_has_no_fmtp_line() -> None:
    sdp = announce_sdp(session_id=1, sender_ip="127.0.0.1", receiver_ip="127.0.0.1", alac=False)
    assert sdp.endswith("m=audio 0 RTP/AVP 96\r\na=rtpmap:96 L16/44100/2\r\n")
    assert "fmtp" not in sdp
    assert "AppleLossless" not in sdp


def test_ipv6_forms() -> None:
    sdp = announce_sdp(session_id=7, sender_ip="::1", receiver_ip="fe80::1%lo")
    lines = sdp.split("\r\n")
    assert lines[1] == "o=iTunes 7 0 IN IP6 ::1"
    assert lines[3] == "c=IN IP6 fe80::1"


def test_encrypted_lines_base64_without_padding() -> None:
    sdp = announce_sdp(
        session_id=1,
        sender_ip="127.0.0.1",
        receiver_ip="127.0.0.1",
        rsa_aes_key=b"\xff" * 256,
        aes_iv=bytes(range(16)),
    )
    lines = sdp.split("\r\n")
    # 256 bytes → 344 base64 chars ending "==" (dropped); 16 bytes → 24 chars ending "==".
    assert lines[-3] == "a=rsaaeskey:" + "/" * 340 + "/w"
    assert lines[-2] == "a=aesiv:AAECAwQFBgcICQoLDA0ODw"
    assert lines[-1] == ""
    assert lines[-4] == "a=fmtp:96 352 0 16 40 10 14 2 255 0 0 44100"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sender_ip": "not-an-ip"},
        {"receiver_ip": "127.0.0.1.5"},
        {"session_id": -1},
        {"rsa_aes_key": b"k" * 256},
        {"aes_iv": b"i" * 16},
    ],
)
def test_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "session_id": 1,
        "sender_ip": "127.0.0.1",
        "receiver_ip": "127.0.0.1",
        **kwargs,
    }
    with pytest.raises(ValueError):
        announce_sdp(**args)  # type: ignore[arg-type]
