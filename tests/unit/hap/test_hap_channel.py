"""Encrypted channel framing: fixed vectors, block splits, tampering, random TCP splits."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from airplay_provider.protocol.hap.channel import (
    ChannelCipher,
    ChannelKeys,
    control_keys,
    event_keys,
)
from airplay_provider.protocol.hap.errors import ChannelError

KEYS = ChannelKeys(encrypt_key=bytes(range(32)), decrypt_key=bytes(range(32, 64)))


def _hkdf_sha512(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """RFC 5869 with a single expand block, written out independently of the package."""
    prk = hmac.new(salt, ikm, hashlib.sha512).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha512).digest()[:32]


def test_first_block_matches_fixed_vector() -> None:
    plaintext = b"GET /info RTSP/1.0\r\nCSeq: 1\r\n\r\n"
    wire = ChannelCipher(KEYS).encrypt(plaintext)
    aad = len(plaintext).to_bytes(2, "little")
    nonce = bytes(4) + (0).to_bytes(8, "little")
    assert wire == aad + ChaCha20Poly1305(KEYS.encrypt_key).encrypt(nonce, plaintext, aad)
    assert wire.hex() == (
        "1f00"
        "5ffd1611828fc8b77c410e35fc136116d681feffa2fe3e2dd6d8cd1f20387f"
        "15cfe9b2c307ac3eab604690f9f33f23"
    )


def test_long_payload_is_split_into_1024_byte_blocks_with_counters() -> None:
    plaintext = bytes(i % 251 for i in range(2500))
    wire = ChannelCipher(KEYS).encrypt(plaintext)
    aead = ChaCha20Poly1305(KEYS.encrypt_key)
    expected = b""
    for counter, (start, size) in enumerate([(0, 1024), (1024, 1024), (2048, 452)]):
        aad = size.to_bytes(2, "little")
        nonce = bytes(4) + counter.to_bytes(8, "little")
        expected += aad + aead.encrypt(nonce, plaintext[start : start + size], aad)
    assert wire == expected
    assert ChannelCipher(KEYS).encrypt(b"") == b""


def test_counters_continue_across_calls() -> None:
    sender = ChannelCipher(KEYS)
    receiver = ChannelCipher(KEYS.reversed())
    for message in (b"one", b"two" * 600, b"three"):
        assert receiver.decrypt(sender.encrypt(message)) == message
    assert receiver.buffered == 0


def test_control_and_event_key_schedule() -> None:
    shared = bytes(range(100, 132))
    control = control_keys(shared)
    assert control.encrypt_key == _hkdf_sha512(
        shared, b"Control-Salt", b"Control-Write-Encryption-Key"
    )
    assert control.decrypt_key == _hkdf_sha512(
        shared, b"Control-Salt", b"Control-Read-Encryption-Key"
    )
    events = event_keys(shared)
    assert events.encrypt_key == _hkdf_sha512(shared, b"Events-Salt", b"Events-Read-Encryption-Key")
    assert events.decrypt_key == _hkdf_sha512(
        shared, b"Events-Salt", b"Events-Write-Encryption-Key"
    )


def test_tampered_block_breaks_the_channel() -> None:
    wire = bytearray(ChannelCipher(KEYS).encrypt(b"OPTIONS * RTSP/1.0\r\n\r\n"))
    wire[5] ^= 0x01
    receiver = ChannelCipher(KEYS.reversed())
    with pytest.raises(ChannelError, match="tag"):
        receiver.decrypt(bytes(wire))
    with pytest.raises(ChannelError, match="broken"):
        receiver.decrypt(b"")


def test_plaintext_is_rejected_at_once() -> None:
    with pytest.raises(ChannelError, match="exceeds"):
        ChannelCipher(KEYS).decrypt(b"GET /info RTSP/1.0\r\n")


def test_replayed_block_fails_because_counter_moved() -> None:
    block = ChannelCipher(KEYS).encrypt(b"hello")
    receiver = ChannelCipher(KEYS.reversed())
    assert receiver.decrypt(block) == b"hello"
    with pytest.raises(ChannelError):
        receiver.decrypt(block)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=1500), min_size=1, max_size=5),
    st.lists(st.integers(1, 400), max_size=30),
)
def test_random_tcp_splits_decode_to_the_same_bytes(messages: list[bytes], cuts: list[int]) -> None:
    sender = ChannelCipher(KEYS)
    wire = b"".join(sender.encrypt(message) for message in messages)
    receiver = ChannelCipher(KEYS.reversed())
    out = b""
    pos = 0
    for cut in cuts:
        out += receiver.decrypt(wire[pos : pos + cut])
        pos += cut
    out += receiver.decrypt(wire[pos:])
    assert out == b"".join(messages)
    assert receiver.buffered == 0


@given(st.binary(max_size=2000))
def test_garbage_raises_only_channel_error(data: bytes) -> None:
    receiver = ChannelCipher(KEYS)
    try:
        out = receiver.decrypt(data)
    except ChannelError:
        return
    assert out == b""  # nothing can authenticate without the key
