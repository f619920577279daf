"""Kernel send timestamps for PTP event messages (Linux SO_TIMESTAMPING, software TX stamps).

A stamp taken before `sendto` is early by the whole send path, which on a virtual link also
delivers the datagram (tens of µs under load, and not the same both ways): an offset measured
from such stamps is off by half the difference. The kernel's software TX stamp is taken as the
driver transmits, the counterpart of the receive stamp (`SO_TIMESTAMPNS`), as linuxptp does
without hardware stamping. Requested per datagram, so other sends queue nothing.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys

SO_TIMESTAMPING = 37
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
_STAMPS = struct.Struct("=qqqqqq")  # struct scm_timestamping: software, (deprecated), raw
_ERRQUEUE_SPACE = socket.CMSG_SPACE(_STAMPS.size) + socket.CMSG_SPACE(64)


def enable_send_stamps(sock: socket.socket) -> bool:
    """Let `send_stamped` ask for TX stamps on `sock`; False where the kernel cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        flags = SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_TSONLY
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
    except OSError:
        return False
    return True


def send_stamped(sock: socket.socket, data: bytes, address: tuple[str, int]) -> int | None:
    """Send `data`; the kernel's CLOCK_REALTIME ns when it left (None: no stamp came back)."""
    ask = struct.pack("=I", SOF_TIMESTAMPING_TX_SOFTWARE)
    try:
        sock.sendmsg([data], [(socket.SOL_SOCKET, SO_TIMESTAMPING, ask)], 0, address)
    except OSError:
        return None
    with contextlib.suppress(OSError):  # BlockingIOError: not stamped (yet)
        _data, ancillary, _flags, _addr = sock.recvmsg(1, _ERRQUEUE_SPACE, socket.MSG_ERRQUEUE)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(payload) >= 16:
                seconds, nanos = struct.unpack_from("=qq", payload)
                if seconds or nanos:
                    return int(seconds) * 1_000_000_000 + int(nanos)
    return None
