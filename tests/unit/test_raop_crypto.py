"""RSA-OAEP key transport and per-packet AES-CBC (docs/protocol.md A.6)."""

from __future__ import annotations

import base64
import functools

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from airplay_provider.protocol.raop_crypto import (
    AIRPORT_RSA_MODULUS,
    AudioCipher,
    RaopCryptoError,
    airport_public_key,
    apple_challenge,
    rsa_encrypt_aes_key,
)
from airplay_provider.protocol.sdp import b64_nopad

AES_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
AES_IV = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


@functools.cache
def _test_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def test_airport_modulus_matches_reference_facts() -> None:
    raw = AIRPORT_RSA_MODULUS.to_bytes(256, "big")
    assert AIRPORT_RSA_MODULUS.bit_length() == 2048
    assert raw[:4] == bytes.fromhex("E7D744F2")
    assert raw[-4:] == bytes.fromhex("BF98447B")
    assert base64.b64encode(raw).decode().startswith("59dE8qLieItsH1Wg")
    numbers = airport_public_key().public_numbers()
    assert (numbers.n, numbers.e) == (AIRPORT_RSA_MODULUS, 65537)


def test_oaep_decrypts_with_substituted_key() -> None:
    private_key = _test_private_key()
    aes_key = bytes(range(16))
    encrypted = rsa_encrypt_aes_key(aes_key, private_key.public_key())
    assert len(encrypted) == 256
    assert private_key.decrypt(encrypted, _oaep()) == aes_key
    # OAEP with SHA-256 must not accept it: proves SHA-1 is the hash used.
    sha256 = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    with pytest.raises(ValueError):
        private_key.decrypt(encrypted, sha256)


def test_oaep_with_airport_key() -> None:
    first = rsa_encrypt_aes_key(AES_KEY)
    second = rsa_encrypt_aes_key(AES_KEY)
    assert len(first) == len(second) == 256
    assert first != second  # OAEP is randomised
    assert int.from_bytes(first, "big") < AIRPORT_RSA_MODULUS
    assert len(b64_nopad(first)) == 342


def test_rsa_rejects_wrong_key_size() -> None:
    with pytest.raises(RaopCryptoError):
        rsa_encrypt_aes_key(bytes(15))


def test_b64_nopad_and_challenge() -> None:
    assert b64_nopad(b"") == ""
    assert b64_nopad(b"a") == "YQ"
    assert b64_nopad(b"ab") == "YWI"
    assert b64_nopad(b"abc") == "YWJj"
    assert apple_challenge(bytes(range(16))) == "AAECAwQFBgcICQoLDA0ODw"
    with pytest.raises(RaopCryptoError):
        apple_challenge(bytes(15))


def test_nist_cbc_vector() -> None:
    # NIST SP 800-38A F.2.1 CBC-AES128.Encrypt, first two blocks.
    plaintext = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
    ciphertext = AudioCipher(AES_KEY, AES_IV).encrypt(plaintext)
    assert ciphertext == bytes.fromhex(
        "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
    )


def _independent_cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    """CBC built by hand from single-block AES-ECB."""
    block_cipher = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    previous, out = iv, bytearray()
    for offset in range(0, len(data), 16):
        block = bytes(a ^ b for a, b in zip(data[offset : offset + 16], previous, strict=True))
        previous = block_cipher.update(block)
        out += previous
    return bytes(out)


def test_alac_sized_payload() -> None:
    payload = bytes((i * 7 + 3) & 0xFF for i in range(1412))
    cipher = AudioCipher(AES_KEY, AES_IV)
    encrypted = cipher.encrypt(payload)
    assert len(encrypted) == 1412
    assert encrypted[:1408] == _independent_cbc(AES_KEY, AES_IV, payload[:1408])
    assert encrypted[:1408] != payload[:1408]
    assert encrypted[1408:] == payload[1408:]
    assert cipher.decrypt(encrypted) == payload
    assert cipher.encrypt(payload) == encrypted  # IV restarts for every packet


def test_short_and_empty_payloads_stay_clear() -> None:
    cipher = AudioCipher(AES_KEY, AES_IV)
    assert cipher.encrypt(b"") == b""
    assert cipher.encrypt(b"0123456789abcde") == b"0123456789abcde"


def test_cipher_rejects_bad_sizes() -> None:
    with pytest.raises(RaopCryptoError):
        AudioCipher(bytes(15), AES_IV)
    with pytest.raises(RaopCryptoError):
        AudioCipher(AES_KEY, bytes(32))
