"""The emulated standalone HomePod's own grandmaster, and the daemon's follower talking to it
without sockets: the follower must find the HomePod's offset and drift from the wire messages."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from airplay_provider.protocol import ptp
from airplay_provider.protocol.ptp_follow import NS, PeerClockReport
from airplay_provider.streamer.ptp_followers import Followers
from tests.receivers.ap2_ptp_own import PRIORITY1, OwnClock, OwnClockMaster
from tests.unit.test_ptp_readiness import _daemon, _lease, _until

SENDER = "10.209.0.1"
HOMEPOD_ID = 0x00EE_EEFF_FE00_0001


def _kinds(datagrams: list[tuple[int, bytes]]) -> list[tuple[int, ptp.MessageType]]:
    return [(port, ptp.decode(data).message_type) for port, data in datagrams]


def test_own_clock_maps_both_ways() -> None:
    clock = OwnClock(offset_ns=-4_000_000_000, drift_ppb=40_000, epoch_ns=10 * NS)
    for local in (10 * NS, 20 * NS, 3600 * NS):
        assert abs(clock.local(clock.own(local)) - local) <= 1
    assert clock.own(20 * NS) - clock.own(10 * NS) == 10 * NS + 400_000  # 40 ppm of 10 s


def test_it_announces_248_and_streams_sync_only_once_we_stop_offering_our_clock() -> None:
    master = OwnClockMaster(HOMEPOD_ID, OwnClock(0, 0, 0))
    assert master.poll(0.0) == []  # no SETPEERS yet: it does not know the sender
    master.sender = SENDER
    master.sync_seen(0.0)  # our grandmaster still offers its clock
    first = master.poll(0.1)
    assert _kinds(first) == [(320, ptp.MessageType.ANNOUNCE)]
    announce = ptp.decode(first[0][1])
    assert announce.priority1 == PRIORITY1
    assert announce.grandmaster_id == HOMEPOD_ID
    master.sync_seen(0.5)
    assert master.poll(1.05) == []  # offered 0.55 s ago: no Sync; Announce once a second
    assert not master.mastering
    out = master.poll(1.6)  # quiet for 1.1 s: it becomes master
    assert master.mastering
    assert (319, ptp.MessageType.SYNC) in _kinds(out)
    follow_up = ptp.decode(master.sync_sent(2 * NS))
    assert follow_up.message_type is ptp.MessageType.FOLLOW_UP
    assert follow_up.sequence_id == ptp.decode(out[-1][1]).sequence_id
    assert follow_up.timestamp_ns == 2 * NS  # t1 on its clock (no offset here)
    syncs = master.syncs_sent
    for step in range(1, 9):  # one more second: 8 Syncs, 4 Announces
        master.poll(1.6 + step * 0.125)
    assert master.syncs_sent - syncs == 8
    master.sync_seen(3.0)  # offered again: it stops its Sync stream
    master.poll(3.01)
    assert not master.mastering


def test_delay_req_is_answered_on_its_own_clock_only_from_the_sender() -> None:
    clock = OwnClock(offset_ns=5 * NS, drift_ppb=0, epoch_ns=0)
    master = OwnClockMaster(HOMEPOD_ID, clock, sender=SENDER)
    master.poll(0.0)
    ours = ptp.PortIdentity(0xABCD)
    request = ptp.encode_delay_req(ours, 17)
    master.delay_req(request, "10.209.0.9", 7 * NS)  # not the sender
    master.delay_req(request, SENDER, 7 * NS)
    replies = [data for port, data in master.poll(0.01) if port == 320]
    responses = [ptp.decode(data) for data in replies]
    responses = [r for r in responses if r.message_type is ptp.MessageType.DELAY_RESP]
    assert len(responses) == 1
    assert responses[0].timestamp_ns == 12 * NS
    assert responses[0].requesting == ours
    assert responses[0].sequence_id == 17


def test_the_daemons_follower_finds_the_homepod_clock_from_its_messages() -> None:
    """8 Hz Sync/Follow_Up from the HomePod, our Delay_Req back, 60 µs each way: after 5 s the
    follower's translation matches the HomePod's true clock (-3 s, +40 ppm) within 2 µs."""
    clock = OwnClock(offset_ns=-3 * NS, drift_ppb=40_000, epoch_ns=0)
    master = OwnClockMaster(HOMEPOD_ID, clock, sender=SENDER)
    ours = ptp.PortIdentity(0x1234_5678)
    followers = Followers(ours)
    followers.follow("10.209.0.2")
    wire_ns = 60_000
    local = 100 * NS  # HomePod local time == our PTP time here (same host clock)

    def send_event(request: bytes, _address: str) -> int:
        sent = local + 1_000_000  # our Delay_Req leaves 1 ms after the Sync
        master.delay_req(request, SENDER, sent + wire_ns)
        return sent

    for tick in range(40):
        now = 1.0 + tick * 0.125
        local = 100 * NS + tick * NS // 8
        for port, data in master.poll(now):
            message = ptp.decode(data)
            if port == 319:
                followers.received("10.209.0.2", message, local + wire_ns, send_event)
                follow_up = ptp.decode(master.sync_sent(local))
                followers.received("10.209.0.2", follow_up, local + wire_ns, send_event)
        for _port, data in master.poll(now + 0.001):  # the Delay_Resp
            followers.received("10.209.0.2", ptp.decode(data), local, send_event)
    report = followers.report("10.209.0.2")
    assert report is not None
    assert report.clock_id == HOMEPOD_ID
    assert report.locked
    assert report.translation is not None
    for ahead in (0, NS, 2 * NS):
        our = local + ahead
        assert abs(report.translation.to_peer(our) - clock.own(our)) < 2_000
    assert abs(report.translation.rate_ppb - 40_000) < 1_000
    assert followers.report("10.209.0.3") is None


async def test_the_daemon_follows_a_peer_until_it_is_served_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`follow` over the daemon socket: the peer is followed (its Sync measured, reported with
    its clock id) and offered no Sync by our tick; a plain request for it offers ours again."""
    async with _daemon(tmp_path) as (daemon, path, receiver):
        master = daemon.master
        lease = await _lease(path)
        try:
            reports = await lease.follow(["127.0.0.1"])
            assert reports == {"127.0.0.1": PeerClockReport(None, 0, False, None)}
            assert "127.0.0.1" in master.followers
            sent: list[tuple[str, int]] = []

            def record(_sock: socket.socket, _data: bytes, addr: tuple[str, int]) -> None:
                sent.append(addr)

            monkeypatch.setattr(master, "_send", record)
            master.tick()
            assert sent == []  # it is the master now: no Sync, no Announce from us
            homepod = OwnClockMaster(HOMEPOD_ID, OwnClock(0, 0, 0), sender="127.0.0.1")
            for port, data in homepod.poll(5.0):
                if port == 319:
                    receiver.sendto(data, master.event_sock.getsockname())
                    receiver.sendto(homepod.sync_sent(NS), master.general_sock.getsockname())

            def measured() -> bool:
                report = master.followers.report("127.0.0.1")
                return report is not None and report.clock_id is not None

            await _until(measured)
            reports = await lease.follow(["127.0.0.1"])
            assert reports["127.0.0.1"].clock_id == HOMEPOD_ID
            await lease.add_peers(["127.0.0.1"])  # served again (e.g. it joined a group)
            assert "127.0.0.1" not in master.followers
            master.tick()
            assert ("127.0.0.1", ptp.EVENT_PORT) in sent  # our Sync again
        finally:
            await lease.close()
