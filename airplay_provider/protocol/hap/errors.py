"""Typed errors raised by the HAP pairing code and the encrypted channel."""

from __future__ import annotations

from enum import IntEnum

from airplay_provider.protocol.errors import AirplayError


class HapErrorCode(IntEnum):
    """Values of the HAP ``Error`` TLV (type 0x07)."""

    UNKNOWN = 1
    AUTHENTICATION = 2
    BACKOFF = 3
    MAX_PEERS = 4
    MAX_TRIES = 5
    UNAVAILABLE = 6
    BUSY = 7


class HapError(AirplayError):
    """Base class of every error raised by this package."""


class HapPairingError(HapError):
    """Base class of every HAP pairing failure (the protocol's; the user-facing one is
    `pairing.errors.PairingError`)."""


class ProtocolViolation(HapPairingError):
    """The peer broke the protocol: bad state, missing TLV, bad signature or tag."""


class TlvError(ProtocolViolation):
    """A TLV8 body could not be decoded."""


class InvalidCredentials(HapPairingError):
    """A stored credentials string is malformed."""


class HttpStatusError(HapPairingError):
    """A pairing request was answered with a non-200 status."""

    def __init__(self, status: int, reason: str = "") -> None:
        super().__init__(f"pairing request answered {status} {reason}".rstrip())
        self.status = status
        self.reason = reason


class AccessoryError(HapPairingError):
    """The accessory answered with an Error TLV."""

    code: HapErrorCode = HapErrorCode.UNKNOWN

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or f"accessory reported HAP error {self.code.name.lower()}")


class UnknownAccessoryError(AccessoryError):
    """HAP error 1: unspecified failure."""

    code = HapErrorCode.UNKNOWN


class AuthenticationError(AccessoryError):
    """HAP error 2: wrong PIN, unknown controller or bad proof."""

    code = HapErrorCode.AUTHENTICATION


class BackoffError(AccessoryError):
    """HAP error 3: too many attempts, retry after ``retry_delay`` seconds."""

    code = HapErrorCode.BACKOFF

    def __init__(self, retry_delay: int | None = None) -> None:
        suffix = f", retry in {retry_delay} s" if retry_delay is not None else ""
        super().__init__(f"accessory asks to back off{suffix}")
        self.retry_delay = retry_delay


class MaxPeersError(AccessoryError):
    """HAP error 4: the accessory cannot store another controller."""

    code = HapErrorCode.MAX_PEERS


class MaxTriesError(AccessoryError):
    """HAP error 5: too many failed authentication attempts."""

    code = HapErrorCode.MAX_TRIES


class UnavailableError(AccessoryError):
    """HAP error 6: the accessory cannot pair right now."""

    code = HapErrorCode.UNAVAILABLE


class BusyError(AccessoryError):
    """HAP error 7: another pairing is in progress."""

    code = HapErrorCode.BUSY


_BY_CODE: dict[int, type[AccessoryError]] = {
    cls.code: cls
    for cls in (
        UnknownAccessoryError,
        AuthenticationError,
        MaxPeersError,
        MaxTriesError,
        UnavailableError,
        BusyError,
    )
}


def accessory_error(code: int, retry_delay: int | None = None) -> AccessoryError:
    """Build the typed error for an Error TLV value (unknown codes map to error 1)."""
    if code == HapErrorCode.BACKOFF:
        return BackoffError(retry_delay)
    cls = _BY_CODE.get(code)
    if cls is None:
        return UnknownAccessoryError(f"accessory reported unknown HAP error {code}")
    return cls()


class ChannelError(HapError):
    """The encrypted channel received a bad block (length or tag); it is now unusable."""
