"""Kernel send stamps for our Delay_Req (Linux SO_TIMESTAMPING), on loopback."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from airplay_provider.streamer.ptp_master import enable_receive_timestamps, recv_stamped
from airplay_provider.streamer.ptp_stamps import enable_send_stamps, send_stamped


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender.bind(("127.0.0.1", 0))
        receiver.bind(("127.0.0.1", 0))
        sender.setblocking(False)
        yield sender, receiver
    finally:
        sender.close()
        receiver.close()


def test_the_send_stamp_lies_within_the_send_call_and_before_the_arrival(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    sender, receiver = pair
    if not (enable_send_stamps(sender) and enable_receive_timestamps(receiver)):
        pytest.skip("no kernel timestamps here")
    assert enable_receive_timestamps(sender)  # a socket stamping both ways still reads its stamps
    for _ in range(5):
        before = time.time_ns()
        stamp = send_stamped(sender, b"\x11" * 44, receiver.getsockname())
        after = time.time_ns()
        assert stamp is not None
        assert before <= stamp <= after
        data, _addr, arrived_mono = recv_stamped(receiver)
        assert data == b"\x11" * 44
        assert arrived_mono is not None
        arrived_wall = arrived_mono + (time.time_ns() - time.monotonic_ns())
        assert stamp <= arrived_wall + 1_000  # (the two clocks read a µs apart at most)
    # nothing is left queued on the sender: plain sends ask for no stamp
    sender.sendto(b"plain", receiver.getsockname())
    with pytest.raises(BlockingIOError):
        sender.recvmsg(1, 256, socket.MSG_ERRQUEUE)


def test_without_send_stamps_it_still_sends_and_says_so(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    sender, receiver = pair  # no enable_send_stamps: the kernel reports no stamp
    assert send_stamped(sender, b"x", receiver.getsockname()) is None
    assert receiver.recv(16) == b"x"
