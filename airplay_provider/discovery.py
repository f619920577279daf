"""Browse `_airplay._tcp` and `_raop._tcp` with AsyncZeroconf → device added/updated/removed.

TXT decoding and merging live in `protocol.txt`; this module only moves mDNS events and time.
Listener calls happen one at a time, in event order, from a single dispatcher task.

Addresses come from zeroconf newest first, so after an address change the new address leads
(and wins `choose_address`) even while mDNS still lists the replaced one as valid. Addresses on
the links mDNS runs on (`--interface`, else every interface) come first (`rank_addresses`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Protocol, Self

import ifaddr
from zeroconf import InterfaceChoice, ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from airplay_provider.protocol.txt import (
    SERVICE_TYPES,
    DeviceRecord,
    ServiceKind,
    ServiceRecord,
    TxtError,
    merge_records,
    parse_service,
    service_kind,
)

LOGGER = logging.getLogger(__name__)
_ServiceKey = tuple[ServiceKind, str]


class DeviceListener(Protocol):
    """Receives discovery events, in order."""

    async def device_added(self, device: DeviceRecord) -> None:
        """A new receiver appeared."""
        ...

    async def device_updated(self, device: DeviceRecord) -> None:
        """A known receiver's name, address, ports or TXT changed."""
        ...

    async def device_removed(self, device: DeviceRecord) -> None:
        """A receiver withdrew all its services (`device` is its last record)."""
        ...


class AirPlayDiscovery:
    """AirPlay receivers on the network, kept current from mDNS."""

    def __init__(
        self,
        listener: DeviceListener,
        *,
        interfaces: Sequence[str] | None = None,
        zeroconf: AsyncZeroconf | None = None,
        ignore: Callable[[DeviceRecord], bool] | None = None,
        resolve_timeout: float = 3.0,
        settle_delay: float = 1.5,
        logger: logging.Logger | None = None,
    ) -> None:
        """`interfaces`: local addresses zeroconf binds (None or empty: all interfaces).

        `zeroconf`: an existing AsyncZeroconf to share (not closed by `stop`).
        `ignore`: devices for which it returns True are never reported (e.g. our own receiver).
        `settle_delay`: after an update, resolve again this much later, once mDNS cache-flush
        has expired the replaced addresses (they linger for one second).
        """
        self._listener = listener
        self._interfaces = list(interfaces or [])
        self._zeroconf = zeroconf
        self._owns_zeroconf = zeroconf is None
        self._ignore = ignore
        self._resolve_timeout = resolve_timeout
        self._settle_delay = settle_delay
        self._log = logger or LOGGER
        self._networks = local_networks(self._interfaces)
        self._browser: AsyncServiceBrowser | None = None
        self._services: dict[_ServiceKey, ServiceRecord] = {}
        self._devices: dict[str, DeviceRecord] = {}
        self._resolvers: dict[_ServiceKey, asyncio.Task[None]] = {}
        self._events: asyncio.Queue[tuple[str, DeviceRecord]] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None

    @property
    def devices(self) -> Mapping[str, DeviceRecord]:
        """Receivers currently known, by player id."""
        return {device.player_id: device for device in self._devices.values()}

    async def start(self, *, browse: bool = True) -> None:
        """Start delivering events; with `browse`, bind zeroconf (unless shared) and browse.

        `browse=False` suits hosts that browse themselves and call `handle_service`.
        """
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="airplay-discovery")
        if self._browser is not None or not browse:
            return
        if self._zeroconf is None:
            interfaces = self._interfaces or InterfaceChoice.All
            self._zeroconf = AsyncZeroconf(interfaces=interfaces)
        self._browser = AsyncServiceBrowser(
            self._zeroconf.zeroconf, list(SERVICE_TYPES), handlers=[self._on_state_change]
        )

    async def stop(self) -> None:
        """Stop browsing, cancel pending resolutions, close zeroconf if we own it."""
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        resolvers = list(self._resolvers.values())
        self._resolvers.clear()
        for task in resolvers:
            task.cancel()
        await asyncio.gather(*resolvers, return_exceptions=True)
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None
        if self._zeroconf is not None and self._owns_zeroconf:
            await self._zeroconf.async_close()
            self._zeroconf = None

    async def __aenter__(self) -> Self:
        """Start on entry."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop on exit."""
        await self.stop()

    async def wait_idle(self) -> None:
        """Wait until every queued event has reached the listener."""
        await self._events.join()

    def _on_state_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        """Browser callback (runs in the event loop; must not block)."""
        key = _key(service_type, name)
        if key is None:
            return
        previous = self._resolvers.pop(key, None)
        if previous is not None:
            previous.cancel()
        if state_change is ServiceStateChange.Removed:
            self._remove_service(key)
            return
        settle = state_change is ServiceStateChange.Updated
        task = asyncio.create_task(self._resolve(service_type, name, settle=settle))
        self._resolvers[key] = task
        task.add_done_callback(lambda done: self._forget_resolver(key, done))

    def _forget_resolver(self, key: _ServiceKey, task: asyncio.Task[None]) -> None:
        if self._resolvers.get(key) is task:
            del self._resolvers[key]

    async def _resolve(self, service_type: str, name: str, *, settle: bool) -> None:
        passes = 2 if settle else 1
        for attempt in range(passes):
            if attempt:
                await asyncio.sleep(self._settle_delay)
            zeroconf = self._zeroconf
            if zeroconf is None:
                return
            info = AsyncServiceInfo(service_type, name)
            timeout_ms = int(self._resolve_timeout * 1000)
            if await info.async_request(zeroconf.zeroconf, timeout_ms):
                self.handle_service(service_type, name, info)
            else:
                self._log.debug("could not resolve %s within %.1f s", name, self._resolve_timeout)

    def handle_service(self, service_type: str, name: str, info: ServiceInfo | None) -> None:
        """Apply one resolved service (None: it was removed).

        Also the entry point for hosts that browse themselves (Music Assistant's core calls
        the provider with already-resolved infos).
        """
        key = _key(service_type, name)
        if key is None:
            return
        if info is None:
            self._remove_service(key)
            return
        try:
            record = parse_service(
                service_type,
                name,
                port=info.port,
                addresses=info.parsed_addresses(),
                properties=info.properties,
                hostname=info.server,
            )
        except TxtError as err:
            self._log.debug("ignoring %s: %s", name, err)
            self._remove_service(key)
            return
        for problem in record.problems:
            self._log.debug("%s: %s", name, problem)
        self._services.pop(key, None)  # re-insert: the newest record of a kind wins
        self._services[key] = record
        self._refresh(record.mac)

    def _remove_service(self, key: _ServiceKey) -> None:
        record = self._services.pop(key, None)
        if record is not None:
            self._refresh(record.mac)

    def _refresh(self, mac: str) -> None:
        latest: dict[ServiceKind, ServiceRecord] = {}
        for record in self._services.values():
            if record.mac == mac:
                latest[record.kind] = record
        old = self._devices.get(mac)
        new = None
        if latest:
            new = merge_records(
                latest.get(ServiceKind.RAOP), latest.get(ServiceKind.AIRPLAY), self._networks
            )
            if self._ignore is not None and self._ignore(new):
                self._log.debug("ignoring own receiver %s", new.name)
                new = None
        if new is None:
            if old is not None:
                del self._devices[mac]
                self._events.put_nowait(("removed", old))
            return
        self._devices[mac] = new
        if old is None:
            self._events.put_nowait(("added", new))
        elif old != new:
            self._events.put_nowait(("updated", new))

    async def _dispatch(self) -> None:
        while True:
            kind, device = await self._events.get()
            try:
                if kind == "added":
                    await self._listener.device_added(device)
                elif kind == "updated":
                    await self._listener.device_updated(device)
                else:
                    await self._listener.device_removed(device)
            except Exception:
                self._log.exception("discovery listener failed on %s %s", kind, device.name)
            finally:
                self._events.task_done()


def _key(service_type: str, name: str) -> _ServiceKey | None:
    try:
        return service_kind(service_type), name.lower()
    except TxtError:
        return None


def local_networks(interfaces: Sequence[str]) -> tuple[str, ...]:
    """The networks (``addr/prefix``) of the adapters that hold `interfaces` (all adapters when
    empty): the links mDNS answers arrive on."""
    wanted = set(interfaces)
    networks: list[str] = []
    try:
        adapters = ifaddr.get_adapters()
    except OSError:
        return ()
    for adapter in adapters:
        texts = [(_ip_text(ip.ip), ip.network_prefix) for ip in adapter.ips]
        if wanted and not any(text in wanted for text, _ in texts):
            continue
        networks += [f"{text}/{prefix}" for text, prefix in texts]
    return tuple(networks)


def _ip_text(ip: str | tuple[str, int, int]) -> str:
    return ip if isinstance(ip, str) else ip[0]
