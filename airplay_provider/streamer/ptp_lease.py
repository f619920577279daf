"""A streamer's side of the host's PTP daemon (`ptp_master`): join it, starting it if needed,
and hold timing peers over its Unix socket while the lease stays open."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from airplay_provider.protocol.ptp_follow import PeerClockReport
from airplay_provider.protocol.ptp_readiness import PeerContact
from airplay_provider.streamer.ptp_master import SPAWN_TIMEOUT_S, PtpUnavailable, socket_name

CLIENT_TIMEOUT_S = 2.0
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass
class PtpLease:
    """A streamer's connection to the daemon; peers are held while it stays open."""

    clock_id: int
    ptp_minus_mono_ns: int
    daemon_pid: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def now_ns(self) -> int:
        """Current PTP time."""
        return time.monotonic_ns() + self.ptp_minus_mono_ns

    async def add_peers(self, peers: list[str]) -> None:
        """Ask the grandmaster to serve more timing peers."""
        await _exchange(self.reader, self.writer, peers)

    async def contacts(self, peers: list[str]) -> dict[str, PeerContact] | None:
        """What the grandmaster heard from `peers` (held again); None from a daemon that does
        not report it (an older version still running)."""
        answer = await _exchange_raw(self.reader, self.writer, peers)
        raw = answer.get("contacts")
        if not isinstance(raw, dict):
            return None
        try:
            return {str(peer): PeerContact.from_wire(value) for peer, value in raw.items()}
        except (ValueError, TypeError) as exc:
            raise PtpUnavailable(f"PTP daemon sent bad contacts: {exc}") from exc

    async def follow(self, peers: list[str]) -> dict[str, PeerClockReport]:
        """Have the grandmaster follow `peers`' own clocks (held like timing peers); how far
        it got with each (empty from a daemon that cannot follow: an older version)."""
        answer = await _exchange_raw(self.reader, self.writer, [], follow=peers)
        raw = answer.get("follow")
        if not isinstance(raw, dict):
            return {}
        try:
            return {str(peer): PeerClockReport.from_wire(value) for peer, value in raw.items()}
        except (ValueError, TypeError) as exc:
            raise PtpUnavailable(f"PTP daemon sent a bad clock report: {exc}") from exc

    async def close(self) -> None:
        """Release our peers (they linger in the daemon for a quick restart)."""
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


async def _exchange_raw(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    peers: list[str],
    *,
    follow: Sequence[str] = (),
) -> dict[str, object]:
    request: dict[str, list[str]] = {"peers": peers}
    if follow:
        request["follow"] = list(follow)
    writer.write(json.dumps(request).encode() + b"\n")
    async with asyncio.timeout(CLIENT_TIMEOUT_S):
        await writer.drain()
        line = await reader.readline()
    try:
        answer = json.loads(line)
    except ValueError as exc:
        raise PtpUnavailable(f"PTP daemon answered {line[:80]!r}") from exc
    if not isinstance(answer, dict):
        raise PtpUnavailable(f"PTP daemon answered {line[:80]!r}")
    return answer


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peers: list[str]
) -> dict[str, int]:
    answer = await _exchange_raw(reader, writer, peers)
    try:
        return {key: int(answer[key]) for key in ("clock_id", "ptp_minus_mono_ns", "pid")}  # type: ignore[call-overload]
    except (ValueError, KeyError, TypeError) as exc:
        raise PtpUnavailable(f"PTP daemon answered {str(answer)[:80]!r}") from exc


async def _try_join(peers: list[str]) -> PtpLease | None:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(path=socket_name()), CLIENT_TIMEOUT_S
        )
    except (OSError, TimeoutError):
        return None
    try:
        answer = await _exchange(reader, writer, peers)
    except (OSError, TimeoutError, PtpUnavailable):
        writer.close()
        return None
    return PtpLease(answer["clock_id"], answer["ptp_minus_mono_ns"], answer["pid"], reader, writer)


async def join_ptp_daemon(peers: list[str]) -> PtpLease:
    """Join the host's grandmaster, starting it if needed; PtpUnavailable if it cannot run."""
    lease = await _try_join(peers)
    if lease is not None:
        return lease
    package_root = _PACKAGE_ROOT
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "airplay_provider.streamer.ptp_master",
        "--detach",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), SPAWN_TIMEOUT_S + 2.0)
    except TimeoutError as exc:
        process.kill()
        await process.wait()
        raise PtpUnavailable("PTP daemon did not start in time") from exc
    line = output.decode(errors="replace").strip()
    if line.startswith("error"):
        raise PtpUnavailable(line.removeprefix("error").strip())
    for _ in range(20):  # "ok", or "busy": another streamer's daemon won the race
        lease = await _try_join(peers)
        if lease is not None:
            return lease
        await asyncio.sleep(0.1)
    raise PtpUnavailable(f"cannot reach the PTP daemon ({line})")
