"""DACP server: receivers' remote buttons and volume changes, routed to our players.

An aiohttp HTTP server on a free port, announced as ``iTunes_Ctrl_<DACP-ID>._dacp._tcp``.
Each request carries the stream's ``Active-Remote`` token; the host maps it to a player
(:class:`DacpTarget`), :class:`~airplay_provider.protocol.dacp.DacpPolicy` decides, and the
resulting action is handed to the host as a background task, so the reply (204) leaves within
milliseconds: receivers give up after 500 ms.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from airplay_provider.protocol.dacp import (
    ActionKind,
    CommandKind,
    DacpAction,
    DacpNotFoundError,
    DacpParseError,
    DacpPlayerState,
    DacpPolicy,
    encode_volume_property,
    parse_active_remote,
    parse_request_target,
)

__all__ = ["DACP_SERVICE_TYPE", "DacpServer", "DacpTarget", "dacp_service_name"]

_LOGGER = logging.getLogger(__name__)
# aiohttp logs every unparsable request with a traceback; keep that noise apart.
_HTTP_LOGGER = logging.getLogger(f"{__name__}.http")

DACP_SERVICE_TYPE = "_dacp._tcp.local."
PORT_RANGE = (39831, 49830)
DAAP_SERVER = "iTunes/7.6.2 (Windows; N;)"
DMAP_CONTENT_TYPE = "application/x-dmap-tagged"
MAX_HEADER_BYTES = 8 * 1024
MAX_BODY_BYTES = 64 * 1024
BODY_READ_TIMEOUT_S = 2.0
MAX_CONNECTION_AGE_S = 30.0
ACTION_TIMEOUT_S = 30.0
ZEROCONF_TIMEOUT_S = 10.0
_FALLBACK_PORT_TRIES = 64
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


class DacpTarget(Protocol):
    """What the DACP server needs from its host (the provider, or the standalone host)."""

    def find_player_by_active_remote(self, active_remote: str) -> DacpPlayerState | None:
        """The current state of the player whose stream uses this token, or None."""
        ...

    async def handle_dacp_action(self, player_id: str, action: DacpAction) -> None:
        """Carry out a decided action (runs as a task, after the device got its reply)."""
        ...


def dacp_service_name(dacp_id: str) -> str:
    """Full mDNS instance name of our DACP service."""
    return f"iTunes_Ctrl_{dacp_id}.{DACP_SERVICE_TYPE}"


class _TrackedServer(web.Server):
    """aiohttp low-level server that remembers when each connection opened."""

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.opened_at: dict[RequestHandler, float] = {}

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.opened_at[handler] = asyncio.get_running_loop().time()

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.opened_at.pop(handler, None)


class _DacpResponse(web.Response):
    """A reply that always states its length, 204 included, as iTunes and Music Assistant do.

    aiohttp drops Content-Length from a 204; shairport-sync's DACP client then waits for more
    and logs each button press as failed (code 495), keeping its D-Bus ``Available`` false.
    """

    async def _write_headers(self) -> None:
        if self.status == 204:  # never has a body
            self.headers["Content-Length"] = "0"
        await super()._write_headers()


def _reply(status: int, body: bytes | None = None) -> web.Response:
    response = _DacpResponse(
        status=status,
        body=body,
        headers={"DAAP-Server": DAAP_SERVER, "Content-Type": DMAP_CONTENT_TYPE},
    )
    response.force_close()
    return response


class DacpServer:
    """The DACP HTTP server plus its ``_dacp._tcp`` registration.

    ``hosts``: addresses to bind (None: all). ``publish_addresses``: addresses announced over
    mDNS; defaults to ``hosts`` and is required when binding to all addresses with zeroconf.
    Tell it about our own volume sends (:meth:`note_volume_sent`) for echo suppression and
    about new streams (:meth:`reset_player`).
    """

    def __init__(
        self,
        target: DacpTarget,
        dacp_id: str,
        *,
        hosts: Sequence[str] | None = None,
        zeroconf: AsyncZeroconf | None = None,
        publish_addresses: Sequence[str] | None = None,
        port_range: tuple[int, int] = PORT_RANGE,
        max_connection_age_s: float = MAX_CONNECTION_AGE_S,
        action_timeout_s: float = ACTION_TIMEOUT_S,
        policy_factory: Callable[[], DacpPolicy] = DacpPolicy,
    ) -> None:
        self._target = target
        self._dacp_id = dacp_id
        self._hosts = list(hosts) if hosts else None
        self._zeroconf = zeroconf
        if publish_addresses is None and self._hosts is not None:
            concrete = [h for h in self._hosts if h not in _WILDCARD_HOSTS]
            publish_addresses = concrete or None
        if zeroconf is not None and not publish_addresses:
            raise ValueError("publish_addresses is required to announce a wildcard-bound server")
        self._publish_addresses = list(publish_addresses or [])
        self._port_range = port_range
        self._max_connection_age_s = max_connection_age_s
        self._action_timeout_s = action_timeout_s
        self._unsupported_logged: set[tuple[str, str | None]] = set()
        self._policy_factory = policy_factory
        self._web_server: _TrackedServer | None = None
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._service_info: AsyncServiceInfo | None = None
        self._port = 0
        self._policies: dict[str, DacpPolicy] = {}
        self._pause_timers: dict[str, asyncio.TimerHandle] = {}
        self._last_task: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def dacp_id(self) -> str:
        """The 16-hex-digit id announced in the service name and DbId."""
        return self._dacp_id

    @property
    def port(self) -> int:
        """The TCP port (0 before start)."""
        return self._port

    @property
    def registered(self) -> bool:
        """True while the ``_dacp._tcp`` service is announced."""
        return self._service_info is not None

    async def __aenter__(self) -> DacpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind, start serving, then announce the service (if given a zeroconf)."""
        if self._server is not None:
            raise RuntimeError("DacpServer already started")
        self._web_server = _TrackedServer(
            self._handle,
            max_line_size=4096,
            max_field_size=4096,
            max_headers=32,
            keepalive_timeout=5.0,
            lingering_time=1.0,
            access_log=None,
            logger=_HTTP_LOGGER,
        )
        try:
            self._server = await self._bind(self._web_server)
            self._sweeper = asyncio.create_task(self._sweep_connections(), name="dacp-sweeper")
            if self._zeroconf is not None:
                await self._register(self._zeroconf)
        except BaseException:
            await self.stop()
            raise
        _LOGGER.debug("DACP server %s listening on port %d", self._dacp_id, self._port)

    async def stop(self) -> None:
        """Unannounce, stop serving, close connections, cancel pending work."""
        if self._service_info is not None and self._zeroconf is not None:
            info, self._service_info = self._service_info, None
            try:
                async with asyncio.timeout(ZEROCONF_TIMEOUT_S):
                    await self._zeroconf.async_unregister_service(info)
            except Exception:
                _LOGGER.warning("DACP: unregistering %s failed", info.name, exc_info=True)
        for timer in self._pause_timers.values():
            timer.cancel()
        self._pause_timers.clear()
        tasks = [t for t in (self._sweeper, *self._tasks) if t is not None]
        self._sweeper = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._last_task.clear()
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
            if self._web_server is not None:
                await self._web_server.shutdown(timeout=1.0)
            await server.wait_closed()
        self._web_server = None
        self._port = 0

    def note_volume_sent(self, player_id: str, volume: int) -> None:
        """We just sent ``volume`` (0..100) to the player: its device echo is not a user change."""
        now = asyncio.get_running_loop().time()
        self._policy(player_id).on_volume_sent(volume, now)

    def reset_player(self, player_id: str) -> None:
        """A new stream starts for the player: clear prevent-playback and a pending pause."""
        self._cancel_pause_timer(player_id)
        policy = self._policies.get(player_id)
        if policy is not None:
            policy.reset()

    def forget_player(self, player_id: str) -> None:
        """The player is gone: drop its state."""
        self._cancel_pause_timer(player_id)
        self._policies.pop(player_id, None)

    def prevent_playback(self, player_id: str) -> bool:
        """True if the device said another source took over the player's speaker."""
        policy = self._policies.get(player_id)
        return policy is not None and policy.prevent_playback

    # -- serving ---------------------------------------------------------------------------

    async def _bind(self, web_server: _TrackedServer) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        low, high = self._port_range
        fallback = random.sample(range(49152, 65536), _FALLBACK_PORT_TRIES)
        for port in [*range(low, high + 1), *fallback]:
            try:
                server = await loop.create_server(web_server, host=self._hosts, port=port)
            except OSError as err:
                if err.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise
            self._port = port
            return server
        raise OSError(errno.EADDRINUSE, "DACP: no free port found")

    async def _register(self, zeroconf: AsyncZeroconf) -> None:
        info = AsyncServiceInfo(
            DACP_SERVICE_TYPE,
            dacp_service_name(self._dacp_id),
            port=self._port,
            properties={
                "txtvers": "1",
                "Ver": "131077",
                "DbId": self._dacp_id,
                "OSsi": "0x1F5",
            },
            server=f"{self._dacp_id.lower()}-dacp.local.",
            parsed_addresses=self._publish_addresses,
        )
        async with asyncio.timeout(ZEROCONF_TIMEOUT_S):
            announced = await zeroconf.async_register_service(info)
            await announced
        self._service_info = info

    async def _sweep_connections(self) -> None:
        """Close connections older than the cap (slow or stuck clients)."""
        interval = min(1.0, self._max_connection_age_s / 4)
        while True:
            await asyncio.sleep(interval)
            web_server = self._web_server
            if web_server is None:
                return
            now = asyncio.get_running_loop().time()
            for handler, opened in list(web_server.opened_at.items()):
                if now - opened > self._max_connection_age_s:
                    handler.force_close()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            return _reply(405)
        header_bytes = sum(len(k) + len(v) + 4 for k, v in request.raw_headers)
        if header_bytes > MAX_HEADER_BYTES:
            return _reply(431)
        if request.body_exists:
            status = await self._drain_body(request)
            if status is not None:
                return _reply(status)
        try:
            command = parse_request_target(request.raw_path)
        except DacpNotFoundError:
            return _reply(404)
        except DacpParseError as err:
            _LOGGER.debug("DACP: malformed request %r: %s", request.raw_path[:200], err)
            return _reply(400)
        token = parse_active_remote(request.headers.get("Active-Remote"))
        player = self._lookup(token)
        if token is None or player is None:
            _LOGGER.debug("DACP: %s for unknown Active-Remote, ignored", command.kind.value)
            return _reply(204)
        if command.kind is CommandKind.GET_VOLUME:
            if player.volume is None or not 0 <= player.volume <= 100:
                return _reply(204)
            return _reply(200, encode_volume_property(player.volume))
        policy = self._policy(player.player_id)
        action = policy.on_command(command, player, asyncio.get_running_loop().time())
        if command.kind is not CommandKind.UNSUPPORTED:
            _LOGGER.debug("DACP: %s %s -> %s", player.player_id, command, action)
        elif (player.player_id, command.name) not in self._unsupported_logged:
            # shairport-sync polls `getspeakers` every second: say it once per player.
            self._unsupported_logged.add((player.player_id, command.name))
            _LOGGER.debug("DACP: %s sent unsupported %s (ignored)", player.player_id, command.name)
        self._schedule_pause(player.player_id, token, policy)
        self._dispatch(player.player_id, action)
        return _reply(204)

    async def _drain_body(self, request: web.BaseRequest) -> int | None:
        """Read (and drop) a request body; an HTTP error status if it is too big or slow."""
        length = request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            return 413
        received = 0
        try:
            async with asyncio.timeout(BODY_READ_TIMEOUT_S):
                while chunk := await request.content.readany():
                    received += len(chunk)
                    if received > MAX_BODY_BYTES:
                        return 413
        except TimeoutError:
            return 408
        except Exception:  # aiohttp payload errors: broken chunking etc.
            return 400
        return None

    def _lookup(self, token: str | None) -> DacpPlayerState | None:
        if token is None:
            return None
        try:
            return self._target.find_player_by_active_remote(token)
        except Exception:
            _LOGGER.exception("DACP: player lookup failed for Active-Remote %s", token)
            return None

    def _policy(self, player_id: str) -> DacpPolicy:
        policy = self._policies.get(player_id)
        if policy is None:
            policy = self._policies[player_id] = self._policy_factory()
        return policy

    # -- debounced pause -------------------------------------------------------------------

    def _cancel_pause_timer(self, player_id: str) -> None:
        timer = self._pause_timers.pop(player_id, None)
        if timer is not None:
            timer.cancel()

    def _schedule_pause(self, player_id: str, token: str, policy: DacpPolicy) -> None:
        self._cancel_pause_timer(player_id)
        deadline = policy.pause_deadline
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        self._pause_timers[player_id] = loop.call_at(
            deadline, self._fire_pause, player_id, token, deadline
        )

    def _fire_pause(self, player_id: str, token: str, deadline: float) -> None:
        self._pause_timers.pop(player_id, None)
        policy = self._policies.get(player_id)
        if policy is None:
            return
        player = self._lookup(token)
        if player is None or player.player_id != player_id:
            policy.cancel_pause()
            return
        now = max(asyncio.get_running_loop().time(), deadline)
        self._dispatch(player_id, policy.poll(player, now))

    # -- dispatch --------------------------------------------------------------------------

    def _dispatch(self, player_id: str, action: DacpAction) -> None:
        if action.kind is ActionKind.NONE:
            return
        previous = self._last_task.get(player_id)
        task = asyncio.create_task(
            self._run_action(player_id, action, previous), name=f"dacp-{action.kind.value}"
        )
        self._last_task[player_id] = task
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        for player_id, last in list(self._last_task.items()):
            if last is task:
                del self._last_task[player_id]

    async def _run_action(
        self, player_id: str, action: DacpAction, previous: asyncio.Task[None] | None
    ) -> None:
        """Run one action after the player's previous one (device order is kept)."""
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        try:
            async with asyncio.timeout(self._action_timeout_s):
                await self._target.handle_dacp_action(player_id, action)
        except TimeoutError:
            _LOGGER.warning("DACP: %s for %s timed out", action.kind.value, player_id)
        except Exception:
            _LOGGER.exception("DACP: %s for %s failed", action.kind.value, player_id)
