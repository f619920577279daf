"""What a pairing attempt tells the user when it fails: one `PairingError` per cause, and
the mapping from transport and HAP failures to them (no secret ever in a message)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airplay_provider.protocol.errors import AirplayError
from airplay_provider.protocol.hap.errors import (
    AuthenticationError,
    BackoffError,
    BusyError,
    HapError,
    HttpStatusError,
    MaxPeersError,
    MaxTriesError,
    UnavailableError,
)
from airplay_provider.protocol.txt import StreamingProtocol

if TYPE_CHECKING:
    from airplay_provider.pairing.attempt import PairingTarget


class PairingError(AirplayError):
    """A pairing attempt failed; ``str()`` is a message for the user (never a secret)."""


class PairingStateError(PairingError):
    """The request does not fit the session's state (finish before start, start twice...)."""


class InvalidPinError(PairingError):
    """The PIN text is not 4 to 8 digits; the session still waits for a PIN."""


class WrongPinError(PairingError):
    """The device refused the PIN."""


class PairingBackoffError(PairingError):
    """The device refuses attempts for now; ``retry_delay`` seconds if it said."""

    def __init__(self, message: str, retry_delay: int | None) -> None:
        super().__init__(message)
        self.retry_delay = retry_delay


class PairingRefusedError(PairingError):
    """The device refused to pair (too many controllers, busy, unexpected status...)."""


class DeviceUnreachableError(PairingError):
    """No connection, no answer in time, or the connection was lost."""


class PairingExpiredError(PairingError):
    """No PIN arrived within the session's PIN timeout."""


def user_error(err: BaseException, target: PairingTarget, *, pin_sent: bool) -> PairingError:
    """Map a transport or protocol failure to a user message (no secret in it)."""
    where = f"{target.address}:{target.port}"
    if isinstance(err, PairingError):
        return err
    if isinstance(err, AuthenticationError):
        return WrongPinError("the device refused the PIN; start pairing again for a new PIN")
    if isinstance(err, BackoffError):
        delay = f" in {err.retry_delay} s" if err.retry_delay is not None else " later"
        return PairingBackoffError(
            f"the device refuses pairing attempts for now; try again{delay}", err.retry_delay
        )
    if isinstance(err, MaxTriesError):
        return PairingRefusedError("too many wrong PINs; the device refuses to pair for now")
    if isinstance(err, MaxPeersError):
        return PairingRefusedError("the device cannot pair another controller; remove one first")
    if isinstance(err, BusyError | UnavailableError):
        return PairingRefusedError("the device is busy with another pairing; try again later")
    if isinstance(err, HttpStatusError):
        if pin_sent and target.protocol is StreamingProtocol.RAOP and err.status in (401, 470):
            return WrongPinError("the device refused the PIN; start pairing again for a new PIN")
        step = "the pairing exchange" if pin_sent else "the request to show a PIN"
        return PairingRefusedError(f"the device answered {err.status} to {step}")
    if isinstance(err, HapError):
        return PairingRefusedError(f"the device broke the pairing protocol ({type(err).__name__})")
    if isinstance(err, TimeoutError):
        return DeviceUnreachableError(f"no answer from {where} in time")
    if isinstance(err, OSError):  # ConnectionError included
        reason = err.strerror or type(err).__name__
        return DeviceUnreachableError(f"connection to {where} failed or was lost ({reason})")
    return PairingError(f"pairing failed unexpectedly ({type(err).__name__})")
