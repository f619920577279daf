"""A StreamSession with an AirPlay 2 member on PTP timing, sender and emulated receiver in
network namespaces: the member's first frame is due `PTP_SETTLE_S` after it connected, so the
receiver has heard our clock well before (shairport-sync with nqptp drops audio due before it
follows our clock), and the audio arrives bit-exact.

The session runs inside the sender's namespace: this module is also its driver
(``python -m tests.integration.test_session_ptp_hold ADDRESS:PORT``), printing a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from airplay_provider.protocol.streamer_status import Connected
from airplay_provider.protocol.timing import unix_ns_from_ntp
from airplay_provider.session import StreamSession
from airplay_provider.session.timeline import PTP_SETTLE_S
from tests.audio import assert_audio_delivered, test_signal
from tests.group_helpers import ap2_target, flow_source
from tests.receivers.netns_driver import receiver_end, run_session

pytestmark = pytest.mark.netns
SIGNAL_SEED = 21
SIGNAL_S = 2.0
#: shairport-sync 5 + nqptp took ~1.2 s from SETPEERS until it could schedule audio (measured).
NQPTP_FOLLOW_S = 1.2


async def drive(address: str, port: int) -> dict[str, object]:
    """Play the test signal to one AirPlay 2 receiver in a session; what the test checks."""
    session = StreamSession(flow_source(test_signal(SIGNAL_S, seed=SIGNAL_SEED)))
    target = ap2_target("ptp", port, address)
    try:
        report = await session.start([target])
        ended = await session.wait_ended(20)
    finally:
        await session.stop()
    (member,) = session.departed
    connected = member.streamer.last(Connected)
    connected_at = member.streamer.connected_at
    assert connected_at is not None
    return {
        "failed": [join.error for join in report.failed],
        "ended": ended,
        "timing": connected.timing if connected is not None else None,
        "connected_unix_ns": time.time_ns() - round((time.monotonic() - connected_at) * 1e9),
        "start_unix_ns": unix_ns_from_ntp(session.start_ntp),
    }


async def test_a_ptp_member_starts_only_once_the_receiver_follows_our_clock(
    tmp_path: Path,
) -> None:
    signal = test_signal(SIGNAL_S, seed=SIGNAL_SEED)
    sent, (report,) = await run_session(
        tmp_path, "tests.integration.test_session_ptp_hold", [[]], timeout_s=40
    )
    assert sent["failed"] == []
    assert sent["ended"] is True
    assert sent["timing"] == "ptp"
    assert report["errors"] == []
    # T is PTP_SETTLE_S (and the release lead) after `connected`, when the receiver has been
    # hearing our grandmaster for longer than a real one needs to follow it (0.5 s without
    # the hold)
    connected_ns, start_ns = int(sent["connected_unix_ns"]), int(sent["start_unix_ns"])
    assert start_ns - connected_ns >= PTP_SETTLE_S * 1e9
    first_sync = report["ptp"]["first_sync_local"]
    assert first_sync is not None
    assert start_ns - first_sync >= NQPTP_FOLLOW_S * 1e9
    # the hold flushes before any audio: the audio is in a later segment, bit-exact
    heard = [s for s in report["segments"] if s["first_rtp"] is not None]
    assert len(heard) == 1
    pcm = await asyncio.to_thread(Path(heard[0]["pcm"]).read_bytes)
    assert_audio_delivered(pcm, signal, tolerance_lsb=0)


def main() -> int:
    """The driver (runs inside the sender's namespace)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("receiver", help="ADDRESS:PORT")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(drive(*receiver_end(args.receiver)))), flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    sys.exit(main())
