"""One pairing attempt: start (the device shows a PIN) → enter the PIN → finish → credentials.

`PairingSession` runs the attempt over `pairing.client` (HAP PIN pair-setup for AirPlay 2,
legacy ``/pair-setup-pin`` for RAOP Apple TVs) and turns every failure into a `PairingError`
(`pairing.errors`) whose text is a user message. Neither the PIN nor the credentials are ever
logged or put into an error message.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
from dataclasses import dataclass
from typing import Final

from airplay_provider.pairing.errors import (
    DeviceUnreachableError,
    InvalidPinError,
    PairingError,
    PairingExpiredError,
    PairingStateError,
    user_error,
)
from airplay_provider.protocol.hap.credentials import check_identifier
from airplay_provider.protocol.hap.errors import InvalidCredentials
from airplay_provider.protocol.txt import DeviceRecord, StreamingProtocol
from airplay_provider.rtsp_connection import RtspConnection

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 10.0
REQUEST_TIMEOUT_S: Final = 30.0
PIN_TIMEOUT_S: Final = 300.0
USER_AGENT: Final = "AirPlay/381.13"
PROTOCOL_LABELS: Final = {StreamingProtocol.AIRPLAY2: "AirPlay 2", StreamingProtocol.RAOP: "RAOP"}
_PIN_RE = re.compile(r"[0-9]{4,8}")
_PIN_SEPARATORS = str.maketrans("", "", " -")


def normalize_pin(text: str) -> str:
    """``" 12-34 "`` → ``"1234"``; InvalidPinError unless 4 to 8 digits remain."""
    pin = text.strip().translate(_PIN_SEPARATORS)
    if not _PIN_RE.fullmatch(pin):
        raise InvalidPinError("the PIN must be the 4 digits the device shows")
    return pin


@dataclass(frozen=True)
class PairingTarget:
    """Where and how to pair: the address, the port and the protocol the player streams with."""

    address: str
    port: int
    protocol: StreamingProtocol
    name: str = ""
    #: The device's other addresses, best first, tried when `address` does not answer.
    fallbacks: tuple[str, ...] = ()

    @classmethod
    def for_device(cls, device: DeviceRecord, protocol: StreamingProtocol) -> PairingTarget:
        """The `_airplay` port whenever announced (even for RAOP), else the `_raop` port."""
        port = device.airplay_port or device.raop_port
        if device.address is None or port is None:
            raise DeviceUnreachableError(f"{device.name} has no usable address or port")
        others = tuple(a for a in device.fallback_addresses if a != device.address)
        return cls(device.address, port, protocol, device.name, others)

    @property
    def label(self) -> str:
        """``AirPlay 2`` or ``RAOP``."""
        return PROTOCOL_LABELS[self.protocol]


class PairingAttemptState(enum.Enum):
    """Where a `PairingSession` is."""

    IDLE = "idle"
    STARTING = "starting"
    WAITING_FOR_PIN = "waiting_for_pin"
    FINISHING = "finishing"
    PAIRED = "paired"
    FAILED = "failed"
    CLOSED = "closed"


class PairingSession:
    """One pairing attempt: `start` (PIN shown), `finish(pin)` → credentials string, `close`.

    The attempt runs as one task on one connection: ``/pair-pin-start``, then it waits for
    the PIN (at most ``pin_timeout`` s), then the exchange. Every request has a timeout. A
    session is single use: after a failure, start a new one (the device shows a new PIN).
    """

    def __init__(
        self,
        target: PairingTarget,
        identifier: str,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        request_timeout: float = REQUEST_TIMEOUT_S,
        pin_timeout: float = PIN_TIMEOUT_S,
    ) -> None:
        """``identifier``: our persistent DACP id (the HAP pairing identity)."""
        try:
            self.identifier = check_identifier(identifier)
        except InvalidCredentials as err:
            raise ValueError(str(err)) from None
        self.target = target
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._pin_timeout = pin_timeout
        self._state = PairingAttemptState.IDLE
        self._task: asyncio.Task[str] | None = None
        self._pin_wanted: asyncio.Event | None = None
        self._pin: asyncio.Future[str] | None = None

    @property
    def state(self) -> PairingAttemptState:
        """The current state (WAITING_FOR_PIN turns FAILED when the PIN timeout passes)."""
        if self._state is PairingAttemptState.WAITING_FOR_PIN and self._task and self._task.done():
            return PairingAttemptState.FAILED
        return self._state

    @property
    def active(self) -> bool:
        """True from `start` until the attempt ended (paired, failed or closed)."""
        return self.state in (
            PairingAttemptState.STARTING,
            PairingAttemptState.WAITING_FOR_PIN,
            PairingAttemptState.FINISHING,
        )

    async def __aenter__(self) -> PairingSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect and ask the device to show its PIN; returns once it does."""
        if self._state is not PairingAttemptState.IDLE:
            raise PairingStateError("this pairing session was already started")
        self._state = PairingAttemptState.STARTING
        self._pin_wanted = asyncio.Event()
        self._pin = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._attempt(), name="airplay-pairing")
        waiter = asyncio.create_task(self._pin_wanted.wait())
        try:
            await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # our caller gave up (cancelled): do not leave the task behind
            await self.close()
            raise
        finally:
            waiter.cancel()
        if not self._pin_wanted.is_set():
            self._state = PairingAttemptState.FAILED
            raise self._failure(self._task, pin_sent=False)
        self._state = PairingAttemptState.WAITING_FOR_PIN
        _LOGGER.info("%s shows a PIN for %s pairing", self._where(), self.target.label)

    async def finish(self, pin: str) -> str:
        """Complete pairing with the displayed PIN; returns the credentials string to store."""
        waiting = self._state is PairingAttemptState.WAITING_FOR_PIN
        if self.state is PairingAttemptState.FAILED and waiting:
            self._state = PairingAttemptState.FAILED  # ended while waiting (PIN timeout, lost link)
            assert self._task is not None
            raise self._failure(self._task, pin_sent=False)
        if self._state is not PairingAttemptState.WAITING_FOR_PIN:
            raise PairingStateError("no pairing is waiting for a PIN; start pairing (again)")
        normalized = normalize_pin(pin)
        assert self._task is not None
        assert self._pin is not None
        self._state = PairingAttemptState.FINISHING
        self._pin.set_result(normalized)
        try:
            await asyncio.wait({self._task})
        except BaseException:
            await self.close()
            raise
        if self._task.cancelled() or self._task.exception() is not None:
            self._state = PairingAttemptState.FAILED
            raise self._failure(self._task, pin_sent=True)
        self._state = PairingAttemptState.PAIRED
        _LOGGER.info("paired with %s (%s)", self._where(), self.target.label)
        return self._task.result()

    async def close(self) -> None:
        """Abandon the attempt (if still running) and release the connection."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task})
        if self._state is not PairingAttemptState.PAIRED:
            self._state = PairingAttemptState.CLOSED

    # -- the attempt -----------------------------------------------------------------------

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The target's address, else each fallback in turn, all within the connect timeout;
        the first address's failure is the one reported."""
        addresses = [self.target.address, *self.target.fallbacks]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_timeout
        first: OSError | TimeoutError | None = None
        for index, address in enumerate(addresses):
            share = max((deadline - loop.time()) / (len(addresses) - index), 0.001)
            try:
                async with asyncio.timeout(share):
                    return await asyncio.open_connection(address, self.target.port)
            except (OSError, TimeoutError) as err:
                first = first or err
        assert first is not None
        raise user_error(first, self.target, pin_sent=False) from None

    async def _attempt(self) -> str:
        reader, writer = await self._connect()
        # The SRP/Ed25519 machinery loads only when a pairing actually runs (start-up time).
        from airplay_provider.pairing.client import (  # noqa: PLC0415
            legacy_pin_pair_setup,
            pin_pair_setup,
        )

        connection = RtspConnection(
            reader, writer, headers={"User-Agent": USER_AGENT, "DACP-ID": self.identifier}
        )
        try:
            if self.target.protocol is StreamingProtocol.AIRPLAY2:
                hap = await pin_pair_setup(
                    connection,
                    self.identifier,
                    self._wait_for_pin,
                    request_timeout=self._request_timeout,
                )
                return hap.serialize()
            legacy = await legacy_pin_pair_setup(
                connection, self._wait_for_pin, request_timeout=self._request_timeout
            )
            return legacy.serialize()
        finally:
            await connection.close()

    async def _wait_for_pin(self) -> str:
        assert self._pin_wanted is not None
        assert self._pin is not None
        self._pin_wanted.set()
        try:
            async with asyncio.timeout(self._pin_timeout):
                return await asyncio.shield(self._pin)
        except TimeoutError:
            raise PairingExpiredError(
                f"no PIN entered within {self._pin_timeout:g} s; start pairing again"
            ) from None

    def _failure(self, task: asyncio.Task[str], *, pin_sent: bool) -> PairingError:
        if task.cancelled():
            return PairingStateError("the pairing session was closed")
        err = task.exception()
        assert err is not None
        error = user_error(err, self.target, pin_sent=pin_sent)
        _LOGGER.warning("pairing with %s failed: %s", self._where(), error)
        return error

    def _where(self) -> str:
        name = f"{self.target.name} " if self.target.name else ""
        return f"{name}({self.target.address}:{self.target.port})"
