"""Datagrams already queued on an emulator's UDP sockets, read before it handles an RTSP request.

Audio sent before a request (TEARDOWN, FLUSH) reaches the receiving socket before the request's
bytes do, but asyncio reads one datagram per loop pass: on a busy machine the request can be
handled first, and the audio then looks as if sent after it. An emulator awaits
`read_queued_datagrams` before each request so that never happens.
"""

from __future__ import annotations

import asyncio
import fcntl
import struct
import termios
from collections.abc import Iterable

#: A bound: a sender flooding us can't hold RTSP forever.
MAX_QUEUED_DATAGRAMS = 1000


def queued_bytes(transport: asyncio.BaseTransport | None) -> int:
    """Size of the next datagram waiting in the socket's receive queue (0: none)."""
    if transport is None or transport.is_closing():
        return 0
    fd = transport.get_extra_info("socket").fileno()
    try:
        answer = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    size: int = struct.unpack("i", answer)[0]
    return size


async def read_queued_datagrams(transports: Iterable[asyncio.BaseTransport | None]) -> None:
    """Let the loop read every datagram already queued on `transports`."""
    sockets = list(transports)
    for _ in range(MAX_QUEUED_DATAGRAMS):
        if not any(queued_bytes(t) for t in sockets):
            return
        await asyncio.sleep(0)
