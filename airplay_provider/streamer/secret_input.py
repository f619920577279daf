"""Secrets handed to a streamer outside its command line.

Any local user can read a process's arguments (``/proc/PID/cmdline``), so our provider never
puts the receiver password, pairing credentials or the Active-Remote token there. It writes
them as ``key=value`` lines into a pipe and passes the pipe's read end to the streamer
(``cliraop -secretsfd N``, ``cliap2 --secrets_fd N``); the streamer reads it to the end at start
and closes it. Music Assistant's own argument lists (``-password``, ``-secret``, ``--auth``)
keep working.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Mapping
from typing import Final

from airplay_provider.protocol.errors import AirplayError

#: What may travel this way (anything else is a usage error).
SECRET_KEYS: Final = frozenset({"password", "secret", "auth", "active_remote"})
MAX_SECRETS_BYTES: Final = 16 * 1024
READ_TIMEOUT_S: Final = 2.0


class SecretInputError(AirplayError):
    """The secrets pipe held something we do not accept, or never ended."""


def encode_secrets(values: Mapping[str, str | None]) -> bytes:
    """``key=value`` lines for the values that are set (None and "" are left out)."""
    lines = []
    for key, value in values.items():
        if key not in SECRET_KEYS:
            raise SecretInputError(f"not a secret key: {key!r}")
        if not value:
            continue
        if "\n" in value or "\r" in value:
            raise SecretInputError(f"{key}: line breaks are not allowed")
        lines.append(f"{key}={value}\n")
    return "".join(lines).encode("utf-8")


def parse_secrets(data: bytes) -> dict[str, str]:
    """The mapping written by `encode_secrets`; SecretInputError on anything else."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SecretInputError("secrets are not UTF-8") from exc
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            continue
        key, equals, value = line.partition("=")
        if not equals or key not in SECRET_KEYS:
            raise SecretInputError(f"unexpected line in the secrets input (key {key[:20]!r})")
        if key in values:
            raise SecretInputError(f"{key} given twice in the secrets input")
        values[key] = value
    return values


def read_secrets_fd(fd: int, timeout: float = READ_TIMEOUT_S) -> dict[str, str]:
    """Read `fd` to its end (bounded in size and time), close it, parse it."""
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise SecretInputError("the secrets input did not end in time")
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_SECRETS_BYTES:
                raise SecretInputError(f"the secrets input exceeds {MAX_SECRETS_BYTES} bytes")
            chunks.append(chunk)
    except OSError as exc:
        raise SecretInputError(f"cannot read the secrets input (fd {fd}): {exc.strerror}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return parse_secrets(b"".join(chunks))


def merge_secrets(fd: int | None, from_flags: Mapping[str, str | None]) -> dict[str, str]:
    """Secrets from the command line (Music Assistant's flags) and from `fd`, if given.

    A secret given both ways is refused rather than silently picking one.
    """
    merged = {key: value for key, value in from_flags.items() if value}
    if fd is None:
        return merged
    for key, value in read_secrets_fd(fd).items():
        if key in merged:
            raise SecretInputError(f"{key} given both on the command line and in the secrets fd")
        merged[key] = value
    return merged
