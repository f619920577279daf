"""Pairing flows: start (the device shows a PIN) → enter the PIN → finish → credentials.

`PairingSession` runs one attempt over `pairing.client` (HAP PIN pair-setup for AirPlay 2,
legacy ``/pair-setup-pin`` for RAOP Apple TVs) and turns every failure into a `PairingError`
whose text is a user message. `PairingManager` keeps one session per player behind Music
Assistant style config actions and stores the credentials through the host. Neither the PIN
nor the credentials are ever logged or put into an error message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from music_assistant_models.config_entries import ConfigEntry, ConfigValueType

from airplay_provider.config import (
    CONF_ACTION_FINISH_PAIRING,
    CONF_ACTION_RESET_PAIRING,
    CONF_ACTION_START_PAIRING,
    CONF_AIRPLAY_CREDENTIALS,
    CONF_PAIRING_PIN,
    CONF_RAOP_CREDENTIALS,
    pairing_config_entries,
)
from airplay_provider.protocol.errors import AirplayError
from airplay_provider.protocol.hap.credentials import check_identifier
from airplay_provider.protocol.hap.errors import (
    AuthenticationError,
    BackoffError,
    BusyError,
    HapError,
    HttpStatusError,
    InvalidCredentials,
    MaxPeersError,
    MaxTriesError,
    UnavailableError,
)
from airplay_provider.protocol.txt import DeviceRecord, StreamingProtocol
from airplay_provider.rtsp_connection import RtspConnection

if TYPE_CHECKING:
    from airplay_provider.host_api import ProviderHost
    from airplay_provider.player import AirPlayPlayer

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 10.0
REQUEST_TIMEOUT_S: Final = 30.0
PIN_TIMEOUT_S: Final = 300.0
USER_AGENT: Final = "AirPlay/381.13"
PROTOCOL_LABELS: Final = {StreamingProtocol.AIRPLAY2: "AirPlay 2", StreamingProtocol.RAOP: "RAOP"}
_PIN_RE = re.compile(r"[0-9]{4,8}")
_PIN_SEPARATORS = str.maketrans("", "", " -")


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


def credentials_key(protocol: StreamingProtocol) -> str:
    """The hidden player setting that stores credentials for ``protocol``."""
    return (
        CONF_AIRPLAY_CREDENTIALS
        if protocol is StreamingProtocol.AIRPLAY2
        else CONF_RAOP_CREDENTIALS
    )


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


class SessionState(enum.Enum):
    """Where a `PairingSession` is."""

    IDLE = "idle"
    STARTING = "starting"
    WAITING_FOR_PIN = "waiting_for_pin"
    FINISHING = "finishing"
    PAIRED = "paired"
    FAILED = "failed"
    CLOSED = "closed"


def _user_error(err: BaseException, target: PairingTarget, *, pin_sent: bool) -> PairingError:
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
        self._state = SessionState.IDLE
        self._task: asyncio.Task[str] | None = None
        self._pin_wanted: asyncio.Event | None = None
        self._pin: asyncio.Future[str] | None = None

    @property
    def state(self) -> SessionState:
        """The current state (WAITING_FOR_PIN turns FAILED when the PIN timeout passes)."""
        if self._state is SessionState.WAITING_FOR_PIN and self._task and self._task.done():
            return SessionState.FAILED
        return self._state

    @property
    def active(self) -> bool:
        """True from `start` until the attempt ended (paired, failed or closed)."""
        return self.state in (
            SessionState.STARTING,
            SessionState.WAITING_FOR_PIN,
            SessionState.FINISHING,
        )

    async def __aenter__(self) -> PairingSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect and ask the device to show its PIN; returns once it does."""
        if self._state is not SessionState.IDLE:
            raise PairingStateError("this pairing session was already started")
        self._state = SessionState.STARTING
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
            self._state = SessionState.FAILED
            raise self._failure(self._task, pin_sent=False)
        self._state = SessionState.WAITING_FOR_PIN
        _LOGGER.info("%s shows a PIN for %s pairing", self._where(), self.target.label)

    async def finish(self, pin: str) -> str:
        """Complete pairing with the displayed PIN; returns the credentials string to store."""
        if self.state is SessionState.FAILED and self._state is SessionState.WAITING_FOR_PIN:
            self._state = SessionState.FAILED  # ended while waiting (PIN timeout, lost link)
            assert self._task is not None
            raise self._failure(self._task, pin_sent=False)
        if self._state is not SessionState.WAITING_FOR_PIN:
            raise PairingStateError("no pairing is waiting for a PIN; start pairing (again)")
        normalized = normalize_pin(pin)
        assert self._task is not None
        assert self._pin is not None
        self._state = SessionState.FINISHING
        self._pin.set_result(normalized)
        try:
            await asyncio.wait({self._task})
        except BaseException:
            await self.close()
            raise
        if self._task.cancelled() or self._task.exception() is not None:
            self._state = SessionState.FAILED
            raise self._failure(self._task, pin_sent=True)
        self._state = SessionState.PAIRED
        _LOGGER.info("paired with %s (%s)", self._where(), self.target.label)
        return self._task.result()

    async def close(self) -> None:
        """Abandon the attempt (if still running) and release the connection."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task})
        if self._state is not SessionState.PAIRED:
            self._state = SessionState.CLOSED

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
        raise _user_error(first, self.target, pin_sent=False) from None

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
        error = _user_error(err, self.target, pin_sent=pin_sent)
        _LOGGER.warning("pairing with %s failed: %s", self._where(), error)
        return error

    def _where(self) -> str:
        name = f"{self.target.name} " if self.target.name else ""
        return f"{name}({self.target.address}:{self.target.port})"


SessionFactory = Callable[[PairingTarget, str], PairingSession]


class PairingManager:
    """Per-player pairing behind the config actions ``start_pairing`` / ``finish_pairing`` /
    ``reset_pairing``; credentials go to the host's player settings (hidden, per protocol).
    """

    def __init__(
        self,
        host: ProviderHost,
        identifier: str,
        *,
        session_factory: SessionFactory = PairingSession,
    ) -> None:
        """``identifier``: the provider's persistent DACP id."""
        self._host = host
        self._identifier = identifier
        self._session_factory = session_factory
        self._sessions: dict[str, PairingSession] = {}
        self._errors: dict[str, str] = {}

    def session(self, player_id: str) -> PairingSession | None:
        """The player's pairing session in progress, if any."""
        session = self._sessions.get(player_id)
        return session if session is not None and session.active else None

    def config_entries(self, player: AirPlayPlayer) -> list[ConfigEntry]:
        """Pairing entries for the player's current state (see `pairing_config_entries`)."""
        protocol = player.protocol
        if protocol is None:
            return []
        return pairing_config_entries(
            PROTOCOL_LABELS[protocol],
            required=player.device.pairing_required,
            paired=bool(player.credentials),
            in_progress=self.session(player.player_id) is not None,
            error=self._errors.get(player.player_id),
        )

    async def handle_action(
        self,
        player: AirPlayPlayer,
        action: str,
        values: MutableMapping[str, ConfigValueType] | None = None,
    ) -> None:
        """Run one config action. Failures are kept for the entries (ALERT), not raised."""
        player_id = player.player_id
        if action == CONF_ACTION_START_PAIRING:
            await self._start(player)
        elif action == CONF_ACTION_FINISH_PAIRING:
            pin = (values or {}).get(CONF_PAIRING_PIN)
            await self._finish(player, pin if isinstance(pin, str) else "", values)
        elif action == CONF_ACTION_RESET_PAIRING:
            await self.close_player(player_id)
            self._errors.pop(player_id, None)
            await self._store(player, None, values)
        else:
            raise ValueError(f"unknown pairing action {action!r}")

    async def close_player(self, player_id: str) -> None:
        """Abandon the player's pairing session, if any."""
        session = self._sessions.pop(player_id, None)
        if session is not None:
            await session.close()

    async def close(self) -> None:
        """Abandon every pairing session (provider unload)."""
        for player_id in list(self._sessions):
            await self.close_player(player_id)

    async def _start(self, player: AirPlayPlayer) -> None:
        player_id = player.player_id
        if self.session(player_id) is not None:
            self._host.logger.warning("%s: pairing is already in progress", player.name)
            return
        await self.close_player(player_id)
        self._errors.pop(player_id, None)
        protocol = player.protocol
        try:
            if protocol is None:
                raise PairingRefusedError("no usable streaming protocol for this device")
            target = PairingTarget.for_device(player.device, protocol)
            session = self._session_factory(target, self._identifier)
            self._sessions[player_id] = session
            await session.start()
        except PairingError as err:
            self._errors[player_id] = str(err)
            await self.close_player(player_id)

    async def _finish(
        self,
        player: AirPlayPlayer,
        pin: str,
        values: MutableMapping[str, ConfigValueType] | None,
    ) -> None:
        player_id = player.player_id
        session = self._sessions.get(player_id)
        try:
            if session is None:
                raise PairingStateError("start pairing first")
            credentials = await session.finish(pin)
        except InvalidPinError as err:
            self._errors[player_id] = str(err)  # the session keeps waiting for a PIN
            return
        except PairingError as err:
            self._errors[player_id] = str(err)
            await self.close_player(player_id)
            return
        self._sessions.pop(player_id, None)
        self._errors.pop(player_id, None)
        if values is not None:
            values.pop(CONF_PAIRING_PIN, None)
        await self._store(player, credentials, values)

    async def _store(
        self,
        player: AirPlayPlayer,
        credentials: str | None,
        values: MutableMapping[str, ConfigValueType] | None,
    ) -> None:
        protocol = player.protocol or StreamingProtocol.RAOP
        key = credentials_key(protocol)
        if values is not None:
            values[key] = credentials
        await self._host.set_player_config_value(player.player_id, key, credentials)
        if key == CONF_AIRPLAY_CREDENTIALS:
            player.settings = dataclasses.replace(player.settings, airplay_credentials=credentials)
        else:
            player.settings = dataclasses.replace(player.settings, raop_credentials=credentials)
        self._host.update_player(player)
        self._host.logger.info(
            "%s: %s credentials %s",
            player.name,
            PROTOCOL_LABELS[protocol],
            "stored" if credentials else "removed",
        )
