"""gPTP message encoding (byte-exact, field by field) and decoding, including garbage."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airplay_provider.protocol import ptp

CLOCK = "0011223344556677"
SOURCE = ptp.PortIdentity(int(CLOCK, 16))


def _header(kind: str, length: str, flags: str, seq: str, control: str, log: str) -> str:
    # byte0 (0x10 | type), version 2, length, domain 0, minorSdoId 0, flags, correction 0,
    # 4 reserved, sourcePortIdentity (clock + port 0x8005), sequenceId, control, logInterval
    return f"1{kind}02{length}0000{flags}{'00' * 8}{'00' * 4}{CLOCK}8005{seq}{control}{log}"


def test_sync_is_two_step_unicast_every_125_ms() -> None:
    expected = _header("0", "002c", "0608", "1234", "00", "fd") + "00" * 10
    assert ptp.encode_sync(SOURCE, 0x1234).hex() == expected


def test_follow_up_carries_precise_time_and_both_tlvs() -> None:
    stamp = "0000" + "6553f100" + "075bcd15"  # 1700000000 s, 123456789 ns
    gptp_tlv = "0003" + "001c" + "0080c2" + "000001" + "00" * 22
    apple_tlv = "0003" + "0010" + "000d93" + "000004" + CLOCK + "0000"
    expected = _header("8", "0060", "0408", "1234", "02", "fd") + stamp + gptp_tlv + apple_tlv
    encoded = ptp.encode_follow_up(SOURCE, 0x1234, 1_700_000_000_123_456_789)
    assert encoded.hex() == expected


def test_announce_uses_the_ios_dataset() -> None:
    body = "00" * 10 + "0025" + "00" + "80" + "06" + "21" + "436a" + "80" + CLOCK + "0000" + "20"
    path_trace = "0008" + "0008" + CLOCK
    expected = _header("b", "004c", "0408", "0005", "05", "00") + body + path_trace
    assert ptp.encode_announce(SOURCE, 5).hex() == expected


def test_delay_resp_answers_the_requesting_port() -> None:
    requester = ptp.PortIdentity(0xAABBCCDDEEFF0011, 1)
    request = ptp.decode(ptp.encode_delay_req(requester, 9))
    assert request.message_type is ptp.MessageType.DELAY_REQ
    assert request.source == requester
    expected = (
        _header("9", "0036", "0408", "0009", "03", "fd")
        + "0000" + "00000005" + "00000001"
        + "aabbccddeeff0011" + "0001"
    )  # fmt: skip
    assert ptp.encode_delay_resp(SOURCE, request, 5_000_000_001).hex() == expected


def test_decode_reads_back_every_kind() -> None:
    follow_up = ptp.decode(ptp.encode_follow_up(SOURCE, 7, 42))
    assert (follow_up.message_type, follow_up.sequence_id, follow_up.timestamp_ns) == (
        ptp.MessageType.FOLLOW_UP,
        7,
        42,
    )
    announce = ptp.decode(ptp.encode_announce(SOURCE, 1))
    assert announce.grandmaster_id == SOURCE.clock_id
    assert announce.priority1 == 128
    sync = ptp.decode(ptp.encode_sync(SOURCE, 3))
    assert sync.flags == ptp.FLAGS_SYNC
    assert sync.log_interval == -3


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x10\x02" + bytes(20),  # too short
        bytes.fromhex("1003002c") + bytes(40),  # PTP version 3
        bytes.fromhex("1002ffff") + bytes(40),  # length beyond the datagram
        bytes.fromhex("1f02002c") + bytes(40),  # unknown message type
        bytes.fromhex("1902002c") + bytes(40),  # Delay_Resp body too short
        bytes.fromhex("1802002c") + bytes(30) + bytes.fromhex("000000000000ffffffff"),  # ns ≥ 1e9
    ],
)
def test_garbage_is_a_typed_error(data: bytes) -> None:
    with pytest.raises(ptp.PtpError):
        ptp.decode(data)


def test_negative_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        ptp.encode_timestamp(-1)


@given(st.integers(min_value=0, max_value=(1 << 48) * 10**9 - 1))
def test_timestamps_round_trip(ns: int) -> None:
    assert ptp.decode_timestamp(ptp.encode_timestamp(ns)) == ns


@given(st.binary(max_size=120))
def test_decode_never_crashes(data: bytes) -> None:
    with contextlib.suppress(ptp.PtpError):
        ptp.decode(data)


@pytest.mark.parametrize("size", [0, 1, 9])
def test_short_timestamp_is_a_ptp_error_not_a_struct_error(size: int) -> None:
    with pytest.raises(ptp.PtpError, match="10 bytes"):
        ptp.decode_timestamp(bytes(size))
