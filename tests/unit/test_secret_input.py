"""Secrets reach the streamers through an inherited pipe, never through their command line."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airplay_provider.protocol.hap.credentials import HapCredentials
from airplay_provider.streamer import airplay2_options, raop_options
from airplay_provider.streamer.raop_options import UsageError
from airplay_provider.streamer.secret_input import (
    MAX_SECRETS_BYTES,
    SecretInputError,
    encode_secrets,
    parse_secrets,
    read_secrets_fd,
)

CREDENTIALS = HapCredentials(seed=os.urandom(32), accessory_ltpk=os.urandom(32))


def pipe_with(data: bytes, *, close_writer: bool = True) -> tuple[int, int]:
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    if close_writer:
        os.close(write_end)
        write_end = -1
    return read_end, write_end


def fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


secret_text = st.text(
    alphabet=st.characters(
        blacklist_categories=["Cs"],
        blacklist_characters="\r\n\x85\u2028\u2029\x0b\x0c\x1c\x1d\x1e",
    ),
    min_size=1,
    max_size=60,
)


@given(password=secret_text, secret=secret_text, token=st.integers(1, 2**32 - 1))
def test_encode_then_parse_round_trips(password: str, secret: str, token: int) -> None:
    values = {"password": password, "secret": secret, "active_remote": str(token)}
    assert parse_secrets(encode_secrets(values)) == values


@pytest.mark.parametrize(
    "data",
    [b"user=x\n", b"password\n", b"password=a\npassword=b\n", b"\xff\xfe=1\n"],
)
def test_unexpected_input_is_refused(data: bytes) -> None:
    with pytest.raises(SecretInputError):
        parse_secrets(data)


def test_line_breaks_cannot_smuggle_a_second_key() -> None:
    with pytest.raises(SecretInputError, match="line breaks"):
        encode_secrets({"password": "pw\nsecret=forged"})


def test_reads_to_the_end_and_closes_the_fd() -> None:
    read_end, _ = pipe_with(encode_secrets({"password": "hunter2"}))
    assert read_secrets_fd(read_end) == {"password": "hunter2"}
    assert not fd_is_open(read_end)


def test_a_writer_that_never_closes_times_out() -> None:
    read_end, write_end = pipe_with(b"password=x\n", close_writer=False)
    try:
        with pytest.raises(SecretInputError, match="did not end"):
            read_secrets_fd(read_end, timeout=0.2)
        assert not fd_is_open(read_end)
    finally:
        os.close(write_end)


def test_oversized_input_is_refused() -> None:
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    os.write(write_end, b"p" * (MAX_SECRETS_BYTES + 10))
    os.close(write_end)
    with pytest.raises(SecretInputError, match="exceeds"):
        read_secrets_fd(read_end)


def test_cliraop_takes_password_secret_and_token_from_the_fd() -> None:
    data = encode_secrets({"password": "pw 1", "secret": "00ff", "active_remote": "12345"})
    read_end, _ = pipe_with(data)
    options = raop_options.parse_options(["-secretsfd", str(read_end), "127.0.0.1", "-"])
    assert (options.password, options.secret, options.active_remote) == ("pw 1", "00ff", "12345")


def test_music_assistant_flags_still_work_and_conflicts_are_refused() -> None:
    options = raop_options.parse_options(["-password", "pw", "127.0.0.1", "-"])
    assert options.password == "pw"
    read_end, _ = pipe_with(encode_secrets({"password": "other"}))
    with pytest.raises(UsageError, match="both"):
        raop_options.parse_options(
            ["-password", "pw", "-secretsfd", str(read_end), "127.0.0.1", "-"]
        )


def test_cliap2_takes_credentials_from_the_fd_and_refuses_a_password() -> None:
    base = ["--name", "n", "--hostname", "h", "--address", "127.0.0.1", "--port", "7000"]
    base += ["--txt", '"features=0x1" ', "--pipe", "-"]
    read_end, _ = pipe_with(
        encode_secrets({"auth": CREDENTIALS.serialize(), "active_remote": "77"})
    )
    options = airplay2_options.parse_options([*base, "--secrets_fd", str(read_end)])
    assert options.credentials == CREDENTIALS
    assert options.common.active_remote == "77"
    read_end, _ = pipe_with(encode_secrets({"password": "pw"}))
    with pytest.raises(UsageError, match="password"):
        airplay2_options.parse_options([*base, "--secrets_fd", str(read_end)])
