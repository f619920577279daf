"""SDP body of the RAOP ANNOUNCE request (docs/protocol.md A.5)."""

from __future__ import annotations

import base64
import ipaddress

ALAC_FMTP = "352 0 16 40 10 14 2 255 0 0 44100"


def b64_nopad(data: bytes) -> str:
    """Base64 without '=' padding, as RAOP writes keys, IVs and challenges."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _address_fields(address: str) -> str:
    """``IP4 <addr>`` or ``IP6 <addr>`` for an IP address literal (scope id dropped)."""
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0].strip("[]"))
    except ValueError as err:
        raise ValueError(f"not an IP address: {address!r}") from err
    return f"IP{parsed.version} {parsed}"


def announce_sdp(
    *,
    session_id: int,
    sender_ip: str,
    receiver_ip: str,
    alac: bool = True,
    rsa_aes_key: bytes | None = None,
    aes_iv: bytes | None = None,
) -> str:
    """The ANNOUNCE body: CRLF-terminated lines, ALAC or L16, with RSA/AES lines if given.

    ``rsa_aes_key`` is the already RSA-encrypted AES key (see raop_crypto); it and
    ``aes_iv`` must be given together.
    """
    if session_id < 0:
        raise ValueError("session_id must be non-negative")
    if (rsa_aes_key is None) != (aes_iv is None):
        raise ValueError("rsa_aes_key and aes_iv must be given together")
    lines = [
        "v=0",
        f"o=iTunes {session_id} 0 IN {_address_fields(sender_ip)}",
        "s=iTunes",
        f"c=IN {_address_fields(receiver_ip)}",
        "t=0 0",
        "m=audio 0 RTP/AVP 96",
    ]
    if alac:
        lines += ["a=rtpmap:96 AppleLossless", f"a=fmtp:96 {ALAC_FMTP}"]
    else:
        lines.append("a=rtpmap:96 L16/44100/2")
    if rsa_aes_key is not None and aes_iv is not None:
        lines += [f"a=rsaaeskey:{b64_nopad(rsa_aes_key)}", f"a=aesiv:{b64_nopad(aes_iv)}"]
    return "".join(line + "\r\n" for line in lines)
