"""A minimal RTSP listen-along client for tests and benchmarks (listen_along.py's peer)."""

from __future__ import annotations

import asyncio


async def rtsp_play_client(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A minimal RTSP client: connect, DESCRIBE, SETUP (TCP interleaved), PLAY. A stalled
    client is one that never reads after this (asyncio stops reading the socket once its
    64 kB buffer limit is passed)."""
    host, _, rest = url.removeprefix("rtsp://").partition(":")
    port = int(rest.split("/")[0])
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    session = ""
    steps = [
        ("DESCRIBE", url, "Accept: application/sdp\r\n"),
        ("SETUP", url + "/track1", "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"),
        ("PLAY", url, "Range: npt=0.000-\r\n"),
    ]
    for cseq, (method, uri, headers) in enumerate(steps, start=1):
        extra = headers + (f"Session: {session}\r\n" if session else "")
        writer.write(f"{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}\r\n".encode())
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode()
        assert head.startswith("RTSP/1.0 200"), head
        fields = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in head.splitlines()[1:])
        }
        await asyncio.wait_for(reader.readexactly(int(fields.get("content-length", "0"))), 5)
        session = fields.get("session", session).split(";")[0]
    return reader, writer
