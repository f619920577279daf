"""Sender identity: the persistent DACP id and per-stream Active-Remote tokens.

The DACP id (16 upper-case hex digits) names our ``_dacp._tcp`` service, travels in the
``DACP-ID`` header of every stream and doubles as the pairing identity, so it is created once
and kept in a small JSON state file. Other keys in that file are preserved.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
from pathlib import Path

from airplay_provider.protocol.errors import AirplayError

DACP_ID_KEY = "dacp_id"
_DACP_ID_RE = re.compile(r"[0-9A-F]{16}")
_HEX_RE = re.compile(r"[0-9a-f]+")
_MAX_STATE_BYTES = 1 << 20


class IdentityError(AirplayError):
    """The identity state file exists but cannot be used."""


def is_valid_dacp_id(value: str) -> bool:
    """True for exactly 16 upper-case hex digits."""
    return bool(_DACP_ID_RE.fullmatch(value))


def new_dacp_id() -> str:
    """A fresh random DACP id, never starting with '0'.

    shairport-sync 3.3.8 strips leading zeros from the `iTunes_Ctrl_<id>` service name before
    comparing it with the stream's DACP-ID (mdns_avahi.c), so such an id would never match.
    """
    return f"{secrets.randbelow(15) + 1:X}{secrets.token_hex(8).upper()[1:]}"


def dacp_id_from_seed(seed: str) -> str:
    """A stable DACP id derived from a host's own persistent id (Music Assistant's server id).

    Same seed, same id across restarts, so stored AirPlay 2 pairings stay valid; the first
    digit is never '0' (see `new_dacp_id`).
    """
    if not seed:
        raise ValueError("empty seed for the DACP id")
    digest = hashlib.sha256(seed.encode()).hexdigest().upper()
    first = digest[0] if digest[0] != "0" else "1"
    return first + digest[1:16]


def _read_state(state_file: Path) -> dict[str, object]:
    try:
        raw = state_file.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise IdentityError(f"cannot read {state_file}: {err}") from err
    if len(raw) > _MAX_STATE_BYTES:
        raise IdentityError(f"{state_file} is larger than {_MAX_STATE_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IdentityError(f"{state_file} is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise IdentityError(f"{state_file} does not hold a JSON object")
    return data


def _write_state(state_file: Path, data: dict[str, object]) -> None:
    state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # beside credentials
    fd, tmp_name = tempfile.mkstemp(prefix=".identity-", dir=state_file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, state_file)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_or_create_dacp_id(state_file: Path) -> str:
    """The DACP id stored in ``state_file``; created (and written) on first use.

    Raises IdentityError if the file exists but is unreadable, not a JSON object, or holds
    an invalid id (rather than silently replacing the identity receivers paired with).
    """
    data = _read_state(state_file)
    stored = data.get(DACP_ID_KEY)
    if stored is not None:
        if not isinstance(stored, str) or not is_valid_dacp_id(stored):
            raise IdentityError(f"{state_file}: invalid {DACP_ID_KEY} {stored!r}")
        return stored
    dacp_id = new_dacp_id()
    data[DACP_ID_KEY] = dacp_id
    try:
        _write_state(state_file, data)
    except OSError as err:
        raise IdentityError(f"cannot write {state_file}: {err}") from err
    return dacp_id


def active_remote_for(player_id: str) -> str:
    """A stable Active-Remote token for a player: decimal, lower 32 bits of its MAC.

    Accepts ``aa:bb:cc:dd:ee:ff``, ``aabbccddeeff`` or Music Assistant style ``ap``-prefixed
    ids; any other id is hashed. The result is never ``"0"``.
    """
    compact = player_id.lower().replace(":", "").replace("-", "")
    if compact.startswith("ap") and _HEX_RE.fullmatch(compact[2:]):
        compact = compact[2:]
    if compact and _HEX_RE.fullmatch(compact):
        number = int(compact[-8:], 16)
    else:
        digest = hashlib.sha256(player_id.encode("utf-8")).digest()
        number = int.from_bytes(digest[:4], "big")
    return str(number or 1)


def new_active_remote() -> str:
    """A random non-zero 32-bit Active-Remote token (one per stream)."""
    return str(secrets.randbelow(0xFFFFFFFF) + 1)
