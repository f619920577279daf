"""Local receiver lab: real shairport-sync receivers advertised on loopback only.

The lab starts a private D-Bus system bus, an avahi-daemon restricted to ``lo`` (IPv4, in a
private mount namespace so several labs and a system avahi can coexist) and one shairport-sync
process per receiver. Every process runs in its own process group and is killed on exit.

Two avahi daemons on ``lo`` fight over the unique reverse record ``1.0.0.127.in-addr.arpa``
when both publish their host address, so each lab sets ``publish-addresses=no`` and publishes
its own unique host name with ``avahi-publish -a -R`` (no reverse record) instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from airplay_provider.host.avahi_browse import BrowsedService, parse_avahi_browse
from airplay_provider.host.lab_process import (
    POLL_INTERVAL,
    LabProcess,
    ReceiverLabError,
)

__all__ = [  # defined in avahi_browse.py and lab_process.py; callers import them from here too
    "BrowsedService",
    "LocalReceiver",
    "ReceiverLab",
    "ReceiverLabError",
    "ReceiverSpec",
    "lacks_root",
    "parse_avahi_browse",
]

_PACKAGES = {
    "avahi-publish": "avahi-utils",
    "avahi-browse": "avahi-utils",
    "dbus-daemon": "dbus",
    "unshare": "util-linux",
}
_UDP_PORT_RANGE = 10
_UNIX_PATH_MAX = 99  # dbus-daemon's limit (sun_path is 108 bytes)


@dataclass
class ReceiverSpec:
    """What kind of receiver to start."""

    name: str
    password: str | None = None
    ignore_volume: bool = True
    metadata: bool = False  # True: metadata pipe in the lab dir; the TXT then has md=0,2


@dataclass
class LocalReceiver:
    """A running shairport-sync instance and where its output goes."""

    name: str
    port: int
    udp_port_base: int
    output_path: Path
    log_path: Path
    pid: int
    password: str | None = None

    def read_output(self) -> bytes:
        """Raw s16le stereo 44.1 kHz audio written so far."""
        return self.output_path.read_bytes()

    async def settled_output(self, *, poll_s: float = 0.25, max_wait_s: float = 10.0) -> bytes:
        """The output once it stopped growing (the receiver writes ahead of play time)."""
        size = -1
        for _ in range(max(1, int(max_wait_s / poll_s))):
            data = self.read_output()
            if len(data) == size:
                return data
            size = len(data)
            await asyncio.sleep(poll_s)
        return self.read_output()

    def clear_output(self) -> None:
        """Truncate the output file (the receiver appends, so it goes on writing at 0)."""
        os.truncate(self.output_path, 0)

    def log_text(self) -> str:
        """The receiver's log (``-v --statistics``) so far."""
        return self.log_path.read_text(errors="replace")


def _conf_string(value: str) -> str:
    """A libconfig string literal."""
    if any(ord(c) < 0x20 for c in value):
        raise ReceiverLabError(f"control characters are not allowed: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _port_free(port: int, kind: socket.SocketKind) -> bool:
    """True when ``port`` binds on 0.0.0.0 and [::] (shairport-sync listens on both)."""
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            with socket.socket(family, kind) as sock:
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_tcp_port(taken: set[int]) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("0.0.0.0", 0))
            port = int(sock.getsockname()[1])
        if port not in taken and _port_free(port, socket.SOCK_STREAM):
            return port
    raise ReceiverLabError("no free TCP port found")


def _free_udp_base(taken: set[int]) -> int:
    """A base below the ephemeral range with ``_UDP_PORT_RANGE`` free UDP ports."""
    for _ in range(100):
        base = random.randrange(20000, 32000, _UDP_PORT_RANGE)
        ports = range(base, base + _UDP_PORT_RANGE)
        if taken.isdisjoint(ports) and all(_port_free(p, socket.SOCK_DGRAM) for p in ports):
            return base
    raise ReceiverLabError("no free UDP port range found")


def _require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise ReceiverLabError(
            f"{binary} not found: apt-get install {_PACKAGES.get(binary, binary)}"
        )
    return path


async def _can_connect(path_or_host: str, port: int | None = None) -> bool:
    """One connection attempt to a TCP port or a unix socket (0.5 s at most)."""
    try:
        connect = (
            asyncio.open_connection(path_or_host, port)
            if port is not None
            else asyncio.open_unix_connection(path_or_host)
        )
        _, writer = await asyncio.wait_for(connect, 0.5)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _dbus_config(socket_path: Path) -> str:
    return (
        '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"\n'
        ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
        f"<busconfig>\n  <type>system</type>\n  <listen>unix:path={socket_path}</listen>\n"
        '  <auth>EXTERNAL</auth>\n  <policy context="default">\n    <allow user="*"/>\n'
        '    <allow own="*"/>\n    <allow send_destination="*" eavesdrop="true"/>\n'
        '    <allow receive_sender="*"/>\n    <allow eavesdrop="true"/>\n  </policy>\n'
        "</busconfig>\n"
    )


def _avahi_config(host_name: str) -> str:
    return (
        f"[server]\nhost-name={host_name}\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=lo\n"
        "enable-dbus=yes\n[wide-area]\nenable-wide-area=no\n[publish]\npublish-hinfo=no\n"
        "publish-workstation=no\npublish-addresses=no\npublish-aaaa-on-ipv4=no\n"
        "[reflector]\nenable-reflector=no\n"
    )


def _avahi_argv(config: Path, lab_dir: Path) -> list[str]:
    """avahi-daemon in a private mount namespace: own pid file, none of this host's services."""
    if Path("/run/avahi-daemon").is_dir():
        run_mount = "mount -t tmpfs -o size=1m tmpfs /run/avahi-daemon"
    elif lab_dir.resolve().is_relative_to("/run"):
        raise ReceiverLabError("the lab directory must not be under /run")
    else:
        run_mount = "mount -t tmpfs -o size=1m,mode=755 tmpfs /run && mkdir /run/avahi-daemon"
    script = (
        f"set -e; {run_mount}; if [ -d /etc/avahi/services ]; then "
        "mount -t tmpfs -o size=64k tmpfs /etc/avahi/services; fi; "
        "if [ -f /etc/avahi/hosts ]; then mount --bind /dev/null /etc/avahi/hosts; fi; "
        f"exec {shlex.quote(_require('avahi-daemon'))} -f {shlex.quote(str(config))} "
        "--no-chroot --no-drop-root --no-rlimits"
    )
    return [_require("unshare"), "--mount", "--propagation", "private", "--", "sh", "-c", script]


def _shairport_config(spec: ReceiverSpec, port: int, udp_base: int, metadata_pipe: Path) -> str:
    general = [
        f"name = {_conf_string(spec.name)};",
        f"port = {port};",
        f"udp_port_base = {udp_base};",
        f"udp_port_range = {_UDP_PORT_RANGE};",
        'mdns_backend = "avahi";',
        'interpolation = "basic";',
        f'ignore_volume_control = "{"yes" if spec.ignore_volume else "no"}";',
        # The stdout backend has no delay measurement and releases each frame this long before
        # its play time (default 1.0 s, audio_stdout.c). A real DAC buffer is ~0.2 s; with
        # 1.0 s a sender sending 1 s ahead leaves the receiver no time to ask for resends.
        "audio_backend_buffer_desired_length_in_seconds = 0.2;",
    ]
    if spec.password is not None:
        general.append(f"password = {_conf_string(spec.password)};")
    pipe = _conf_string(str(metadata_pipe))
    metadata = (
        f'enabled = "yes"; include_cover_art = "no"; pipe_name = {pipe};'
        if spec.metadata
        else 'enabled = "no";'
    )
    return (
        "general = {\n  " + "\n  ".join(general) + "\n};\n"
        "sessioncontrol = { session_timeout = 20; };\n"
        f"metadata = {{ {metadata} }};\n"
    )


def lacks_root(command: str) -> bool:
    """True (after telling the user why) when `command` cannot run the lab: it needs root."""
    if os.geteuid() == 0:
        return False
    print(
        f"{command} needs root: it starts avahi-daemon in a private mount namespace (unshare) "
        f"with mDNS on loopback only; run it as root (e.g. sudo airplay-provider {command})",
        file=sys.stderr,
    )
    return True


class ReceiverLab:
    """Private D-Bus + loopback-only avahi + shairport-sync receivers (async context manager).

    Not tied to an event loop: processes are plain ``subprocess.Popen`` children, waits poll.
    """

    def __init__(self, workdir: Path | None = None, *, keep_files: bool = False) -> None:
        self._parent_dir = workdir
        self._keep_files = keep_files
        self._dir: Path | None = None
        self._socket_dir: Path | None = None
        self._dbus_address: str | None = None
        self._infra: list[LabProcess] = []
        self._receivers: dict[int, tuple[LocalReceiver, LabProcess]] = {}
        self._taken_ports: set[int] = set()
        self.host_name = f"aplab-{secrets.token_hex(4)}"

    @property
    def directory(self) -> Path:
        """The lab's private directory (configs, logs, audio outputs)."""
        if self._dir is None:
            raise ReceiverLabError("the lab is not running")
        return self._dir

    @property
    def dbus_address(self) -> str:
        """Address of the lab's private D-Bus system bus."""
        if self._dbus_address is None:
            raise ReceiverLabError("the lab is not running")
        return self._dbus_address

    @property
    def receivers(self) -> list[LocalReceiver]:
        """The receivers running now."""
        return [receiver for receiver, _ in self._receivers.values()]

    def exited_receivers(self) -> list[LocalReceiver]:
        """Receivers whose shairport-sync process has ended on its own."""
        return [receiver for receiver, proc in self._receivers.values() if proc.exited()]

    @property
    def pids(self) -> list[int]:
        """Process ids of everything the lab runs now (process group leaders)."""
        return [p.pid for p in self._infra] + [p.pid for _, p in self._receivers.values()]

    def environ(self) -> dict[str, str]:
        """Environment for D-Bus/avahi clients of this lab (avahi-browse, shairport-sync...)."""
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.dbus_address}

    async def __aenter__(self) -> ReceiverLab:
        for binary in ("dbus-daemon", "avahi-daemon", "avahi-publish", "unshare", "shairport-sync"):
            _require(binary)
        if os.geteuid() != 0:
            raise ReceiverLabError("the receiver lab needs root (mount namespace for avahi-daemon)")
        if self._parent_dir is not None:
            self._parent_dir.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="airplay-lab-", dir=self._parent_dir))
        try:
            await self._start_dbus()
            await self._start_avahi()
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shutdown()

    async def _start_dbus(self) -> None:
        # dbus-daemon takes at most 99 bytes of socket path; the lab's own directory may be
        # deep (a test's tmp_path), so the socket lives in a short directory of its own.
        self._socket_dir = Path(tempfile.mkdtemp(prefix="aplab-", dir="/tmp"))
        socket_path = self._socket_dir / "dbus.sock"
        if len(str(socket_path)) > _UNIX_PATH_MAX:
            raise ReceiverLabError(f"socket path too long for AF_UNIX: {socket_path}")
        config = self.directory / "dbus-system.conf"
        config.write_text(_dbus_config(socket_path))
        argv = [_require("dbus-daemon"), f"--config-file={config}", "--nofork", "--nopidfile"]
        proc = LabProcess("dbus-daemon", argv, self.directory / "dbus.log", dict(os.environ))
        self._infra.append(proc)
        deadline = time.monotonic() + 5.0
        while not (socket_path.exists() and await _can_connect(str(socket_path))):
            if proc.exited():
                raise proc.error("exited during start-up")
            if time.monotonic() > deadline:
                raise proc.error("not listening after 5 s")
            await asyncio.sleep(POLL_INTERVAL)
        self._dbus_address = f"unix:path={socket_path}"

    async def _start_avahi(self) -> None:
        config = self.directory / "avahi-daemon.conf"
        config.write_text(_avahi_config(self.host_name))
        argv = _avahi_argv(config, self.directory)
        avahi = LabProcess("avahi-daemon", argv, self.directory / "avahi.log", self.environ())
        self._infra.append(avahi)
        await avahi.wait_for_log("Server startup complete", 10.0)
        log_lines = avahi.log_path.read_text(errors="replace").splitlines()
        joined = [line for line in log_lines if line.startswith("Joining mDNS multicast group")]
        if not joined or any(" lo.IPv4 " not in line for line in joined):
            raise avahi.error(f"joined other interfaces than lo.IPv4: {joined}")
        argv = [_require("avahi-publish"), "-a", "-R", f"{self.host_name}.local", "127.0.0.1"]
        log = self.directory / "avahi-publish.log"
        publish = LabProcess("avahi-publish", argv, log, self.environ())
        self._infra.append(publish)
        await publish.wait_for_log("Established under name", 10.0)

    async def start_receiver(
        self,
        spec: ReceiverSpec,
        *,
        timeout: float = 10.0,
    ) -> LocalReceiver:
        """Start shairport-sync for ``spec``; return once its RTSP port accepts connections."""
        if not spec.name or len(spec.name) > 50 or "/" in spec.name:
            raise ReceiverLabError(f"bad receiver name {spec.name!r} (1-50 chars, no '/')")
        if any(r.name == spec.name for r in self.receivers):
            raise ReceiverLabError(f"a receiver named {spec.name!r} is already running")
        port = _free_tcp_port(self._taken_ports)
        udp_base = _free_udp_base(self._taken_ports)
        self._taken_ports.update({port, *range(udp_base, udp_base + _UDP_PORT_RANGE)})
        stem = self.directory / f"receiver-{port}"
        config = stem.with_suffix(".conf")
        config.write_text(_shairport_config(spec, port, udp_base, stem.with_suffix(".metadata")))
        argv = [_require("shairport-sync"), "-c", str(config), "-u", "-v", "--statistics"]
        proc = LabProcess(
            f"shairport-sync {spec.name!r}",
            [*argv, "-o", "stdout"],
            stem.with_suffix(".log"),
            self.environ(),
            stdout_path=stem.with_suffix(".pcm"),
        )
        receiver = LocalReceiver(
            spec.name,
            port,
            udp_base,
            stem.with_suffix(".pcm"),
            proc.log_path,
            proc.pid,
            spec.password,
        )
        self._receivers[proc.pid] = (receiver, proc)
        deadline = time.monotonic() + timeout
        while not await _can_connect("127.0.0.1", port):
            if proc.exited() or time.monotonic() > deadline:
                error = proc.error(
                    f"died at start (status {proc.popen.poll()})"
                    if proc.exited()
                    else f"not listening on {port} after {timeout:.1f} s"
                )
                await self.stop_receiver(receiver)
                raise error
            await asyncio.sleep(POLL_INTERVAL)
        return receiver

    async def stop_receiver(self, receiver: LocalReceiver) -> None:
        """Stop one receiver; its output and log stay readable until the lab exits."""
        entry = self._receivers.pop(receiver.pid, None)
        if entry is not None:
            await entry[1].stop()

    async def browse(
        self,
        service_type: str = "_raop._tcp",
        *,
        timeout: float = 5.0,
    ) -> list[BrowsedService]:
        """Resolved services of ``service_type`` that this lab's avahi sees (avahi-browse)."""
        proc = await asyncio.create_subprocess_exec(
            _require("avahi-browse"),
            "-rtpk",
            service_type,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self.environ(),
        )
        try:
            stdout, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ReceiverLabError(f"avahi-browse {service_type} timed out") from None
        return parse_avahi_browse(stdout.decode("utf-8", "replace"))

    async def wait_advertised(
        self,
        receiver: LocalReceiver,
        *,
        timeout: float = 10.0,
    ) -> BrowsedService:
        """Wait until ``receiver``'s ``_raop._tcp`` service resolves on lo; return it."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(1.0, deadline - time.monotonic())
            for service in await self.browse("_raop._tcp", timeout=remaining):
                if service.port == receiver.port and service.name.endswith("@" + receiver.name):
                    return service
            if time.monotonic() > deadline:
                raise ReceiverLabError(f"{receiver.name!r} not advertised after {timeout:.1f} s")
            await asyncio.sleep(0.2)

    async def _shutdown(self) -> None:
        for _, proc in list(self._receivers.values()):
            await proc.stop()
        self._receivers.clear()
        for proc in reversed(self._infra):
            await proc.stop()
        self._infra.clear()
        self._dbus_address = None
        if self._dir is not None and not self._keep_files:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
