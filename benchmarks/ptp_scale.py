"""Benchmark the host's one PTP grandmaster at scale: N AirPlay 2 receivers, each in its own
network namespace (created here, removed afterwards; needs root and `ip netns`).

`timing` (default N = 8, 32, 64): the real daemon (`streamer/ptp_master.py`) in the sender's
namespace; N emulated PTP slaves (the AP2 emulator's `PtpSlave`, all in this process, each
socket opened inside its receiver's namespace) follow it and probe at 8 Hz; N leases (one
per receiver, as N `cliap2` hold them) add the peers and poll the readiness 10 times a second
as `cliap2` does. Figures: the daemon's CPU per receiver in steady state, when each receiver
became ready, and how close each slave's measured offset is to the true one (same host clock).

`play` (N = 8 by default): a `StreamSession` with N AirPlay 2 members on PTP timing, each
receiver the full emulator (`tests.receivers.ap2_netns`); every one must report `clock ready`
and receive the signal bit-exact; the daemon's CPU during the play.

    sudo .venv/bin/python benchmarks/ptp_scale.py [--timing 8,32,64] [--play 8] [--seconds 10]

Prints figures and one JSON line. Targets: ≥ 32 receivers (goal 64) ready and served by one
grandmaster, ≤ 0.2 % of one core per receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from airplay_provider.protocol.ptp_readiness import (  # noqa: E402
    ClockState,
    PeerContact,
    assess,
)
from airplay_provider.streamer.ptp_lease import PtpLease  # noqa: E402
from airplay_provider.streamer.ptp_master import (  # noqa: E402
    enable_receive_timestamps,
    recv_stamped,
    socket_name,
)
from tests.receivers.ap2_netns import in_netns, netns_hosts  # noqa: E402
from tests.receivers.ap2_ptp_slave import PtpSlave  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
CLONE_NEWNET = 0x40000000
POLL_S = 0.1  # as cliap2's clock watch
FOLLOW_POLL_S = 1.0  # ... once the receiver is ready
TICK_S = 0.02
READY_TIMEOUT_S = 15.0
SIGNAL_S = 3.0
SIGNAL_SEED = 64
_libc = ctypes.CDLL(None, use_errno=True)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@contextlib.contextmanager
def _in_netns(name: str) -> Iterator[None]:
    """Run the calling thread in namespace `name` for the block (sockets made there stay)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({name})")
        yield
    finally:
        _libc.setns(home, CLONE_NEWNET)
        os.close(target)
        os.close(home)


def _bind(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    enable_receive_timestamps(sock)
    sock.bind((address, port))
    sock.setblocking(False)
    return sock


class _Slaves:
    """N PTP slaves on their own namespaces' ports 319/320, driven by one event loop."""

    def __init__(self, receivers: list[tuple[str, str]]) -> None:
        self.addresses = [address for _, address in receivers]
        self.slaves = [PtpSlave(clock_id=0x00EE_EEFF_FE00_0000 + i) for i in range(len(receivers))]
        self.sockets: list[tuple[socket.socket, socket.socket]] = []
        for namespace, address in receivers:
            with _in_netns(namespace):
                self.sockets.append((_bind(address, 319), _bind(address, 320)))

    def start(self, loop: asyncio.AbstractEventLoop, clock_id: int) -> None:
        for slave, (event, general) in zip(self.slaves, self.sockets, strict=True):
            slave.follow({clock_id})
            loop.add_reader(event.fileno(), self._read, slave, event, True)
            loop.add_reader(general.fileno(), self._read, slave, general, False)

    @staticmethod
    def _read(slave: PtpSlave, sock: socket.socket, event: bool) -> None:
        # Kernel receive stamps: the figure is the grandmaster's accuracy, not how long this one
        # Python loop took to get to the 64th slave's Sync.
        for _ in range(16):
            try:
                data, addr, mono_ns = recv_stamped(sock)
            except (BlockingIOError, InterruptedError):
                return
            wall_minus_mono = time.time_ns() - time.monotonic_ns()
            local = time.time_ns() if mono_ns is None else mono_ns + wall_minus_mono
            if event:
                slave.event_received(data, addr[0], local)
            else:
                slave.general_received(data, addr[0], local)

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            for slave, (event, _) in zip(self.slaves, self.sockets, strict=True):
                request = slave.poll(now, time.time_ns())
                if request is not None and slave.master_address is not None:
                    with contextlib.suppress(OSError):
                        event.sendto(request, (slave.master_address, 319))
            await asyncio.sleep(TICK_S)

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        for pair in self.sockets:
            for sock in pair:
                loop.remove_reader(sock.fileno())
                sock.close()


async def _lease() -> PtpLease:
    reader, writer = await asyncio.open_unix_connection(path=socket_name())
    writer.write(b'{"peers": []}\n')
    answer = json.loads(await asyncio.wait_for(reader.readline(), 2.0))
    return PtpLease(answer["clock_id"], answer["ptp_minus_mono_ns"], answer["pid"], reader, writer)


async def _watch(lease: PtpLease, peer: str, since_ns: int) -> float | None:
    """Seconds from the hold until `peer` is ready (None: not within READY_TIMEOUT_S)."""
    deadline = since_ns + round(READY_TIMEOUT_S * 1e9)
    while time.monotonic_ns() < deadline:
        contacts = await lease.contacts([peer])
        contact = (contacts or {}).get(peer, PeerContact())
        if assess(contact, since_ns, time.monotonic_ns()).state is ClockState.READY:
            return (time.monotonic_ns() - since_ns) / 1e9
        await asyncio.sleep(POLL_S)
    return None


async def _follow(lease: PtpLease, peer: str) -> None:
    """What cliap2's clock watch does once ready: ask once a second."""
    while True:
        await asyncio.sleep(FOLLOW_POLL_S)
        await lease.contacts([peer])


async def _timing(
    receivers: list[tuple[str, str]], daemon_pid: int, seconds: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    slaves = _Slaves(receivers)
    first = await _lease()
    slaves.start(loop, first.clock_id)
    ticker = asyncio.create_task(slaves.run())
    leases = [first] + [await _lease() for _ in receivers[1:]]
    try:
        cpu0, wall0 = _cpu_seconds(daemon_pid), time.monotonic()
        since = time.monotonic_ns()
        for lease, address in zip(leases, slaves.addresses, strict=True):
            await lease.add_peers([address])
        ready = await asyncio.gather(
            *(_watch(lease, a, since) for lease, a in zip(leases, slaves.addresses, strict=True))
        )
        cpu1, wall1 = _cpu_seconds(daemon_pid), time.monotonic()
        # steady state: Sync/Follow_Up/Announce out, probes in, each cliap2 asking once a second
        followers = [
            asyncio.create_task(_follow(lease, a))
            for lease, a in zip(leases, slaves.addresses, strict=True)
        ]
        await asyncio.sleep(seconds)
        cpu2, wall2 = _cpu_seconds(daemon_pid), time.monotonic()
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        wall_minus_mono = time.time_ns() - time.monotonic_ns()
        true_offset = first.ptp_minus_mono_ns - wall_minus_mono  # master - local (same host)
        errors = [
            abs(slave.offset_ns - true_offset) / 1000
            for slave in slaves.slaves
            if slave.offset_ns is not None
        ]
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        for lease in leases:
            await lease.close()
        slaves.close(loop)
    n = len(receivers)
    got = [r for r in ready if r is not None]
    steady_pct = 100 * (cpu2 - cpu1) / (wall2 - wall1)
    return {
        "receivers": n,
        "ready": len(got),
        "ready_s_median": round(statistics.median(got), 2) if got else None,
        "ready_s_max": round(max(got), 2) if got else None,
        "locked": sum(1 for s in slaves.slaves if s.locked_at_local is not None),
        "offset_error_us_max": round(max(errors), 1) if errors else None,
        "daemon_cpu_pct_readiness": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 2),
        "daemon_cpu_pct_steady": round(steady_pct, 2),
        "daemon_cpu_pct_per_receiver": round(steady_pct / n, 3),
    }


def run_timing(n: int, seconds: float) -> dict[str, Any]:
    """One timing-side run with `n` receivers."""
    with netns_hosts(n) as hosts:
        daemon = subprocess.Popen(
            in_netns(
                hosts.sender,
                [sys.executable, "-m", "airplay_provider.streamer.ptp_master", "--linger", "1"],
            ),
            stdout=subprocess.PIPE,
            cwd=REPO,
        )
        try:
            assert daemon.stdout is not None
            line = daemon.stdout.readline().decode().split()
            if line[:1] != ["ok"]:
                raise RuntimeError(f"PTP daemon did not start: {line}")
            with _in_netns(hosts.sender):  # the daemon's Unix socket is per namespace
                return asyncio.run(_timing(hosts.receivers, int(line[1]), seconds))
        finally:
            daemon.terminate()
            daemon.wait(10)


# ---- a whole session --------------------------------------------------------------------------


async def _drive(targets: list[tuple[str, int]]) -> dict[str, Any]:
    """Inside the sender namespace: play the signal to every receiver in one session."""
    from airplay_provider.protocol.streamer_status import ClockStatus, Timing  # noqa: PLC0415
    from airplay_provider.session import StreamSession  # noqa: PLC0415
    from tests.audio import test_signal  # noqa: PLC0415
    from tests.group_helpers import ap2_target, flow_source  # noqa: PLC0415

    session = StreamSession(flow_source(test_signal(SIGNAL_S, seed=SIGNAL_SEED)))
    members = [ap2_target(f"rx{i}", port, host) for i, (host, port) in enumerate(targets)]
    started = time.monotonic()
    daemon_pid, cpu0 = None, 0.0
    try:
        report = await session.start(members)
        start_s = time.monotonic() - started
        for member in session.members.values():
            timing = member.streamer.last(Timing)
            if timing is not None and timing.daemon_pid:
                daemon_pid = timing.daemon_pid
        if daemon_pid is not None:
            cpu0, wall0 = _cpu_seconds(daemon_pid), time.monotonic()
        ended = await session.wait_ended(SIGNAL_S + 30)
        cpu_pct = None
        if daemon_pid is not None:
            cpu_pct = 100 * (_cpu_seconds(daemon_pid) - cpu0) / (time.monotonic() - wall0)
    finally:
        await session.stop()
    clocks = {}
    for member in session.departed:
        event = member.streamer.last(ClockStatus)
        clocks[member.key] = [event.state, event.after_ms] if event is not None else None
    return {
        "failed": [j.error for j in report.failed],
        "ended": ended,
        "start_s": round(start_s, 2),
        "clocks": clocks,
        "daemon_cpu_pct": None if cpu_pct is None else round(cpu_pct, 2),
    }


async def _play(n: int, tmp: Path) -> dict[str, Any]:
    with netns_hosts(n) as hosts:
        runners, targets = [], []
        try:
            for index, (namespace, address) in enumerate(hosts.receivers):
                argv = [sys.executable, "-m", "tests.receivers.ap2_netns", address, "--ptp"]
                argv += ["--out", str(tmp / f"rx{index}.json"), "--timeout", "90"]
                proc = await asyncio.create_subprocess_exec(
                    *in_netns(namespace, argv), stdout=asyncio.subprocess.PIPE, cwd=REPO
                )
                runners.append(proc)
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), 30.0)
                targets.append(f"{address}:{int(line.split()[1])}")
            driver = await asyncio.create_subprocess_exec(
                *in_netns(hosts.sender, [sys.executable, __file__, "--drive", ",".join(targets)]),
                stdout=asyncio.subprocess.PIPE,
                cwd=REPO,
                env={**os.environ, "AIRPLAY_PTP_LINGER_S": "0.5"},
            )
            stdout, _ = await asyncio.wait_for(driver.communicate(), 120)
            for proc in runners:
                await asyncio.wait_for(proc.wait(), 30)
        finally:
            for proc in runners:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    return dict(json.loads(stdout.decode().splitlines()[-1]))


def run_play(n: int) -> dict[str, Any]:
    """One session of `n` AirPlay 2 PTP members; the figures."""
    import tempfile  # noqa: PLC0415

    from tests.audio import compare_audio, test_signal  # noqa: PLC0415

    signal = test_signal(SIGNAL_S, seed=SIGNAL_SEED)
    exact, with_errors, problems = 0, 0, []
    with tempfile.TemporaryDirectory(prefix="ptp-scale-") as tmp:
        sent = asyncio.run(_play(n, Path(tmp)))
        for index in range(n):
            report = json.loads((Path(tmp) / f"rx{index}.json").read_text())
            heard = [s for s in report["segments"] if s["first_rtp"] is not None]
            if report["errors"]:
                with_errors += 1
                problems.append(f"rx{index}: {len(report['errors'])} errors {report['errors'][:2]}")
            if len(heard) != 1:
                problems.append(f"rx{index}: {len(heard)} segments with audio")
                continue
            pcm = Path(heard[0]["pcm"]).read_bytes()
            comparison = compare_audio(pcm, signal, tolerance_lsb=0)
            exact += comparison.ok
            if not comparison.ok:
                problems.append(f"rx{index}: {comparison} unhealed {report['unhealed'][:3]}")
    for problem in problems[:8]:
        print(problem, file=sys.stderr)
    ready = sum(1 for c in sent["clocks"].values() if c and c[0] == "ready")
    after = [c[1] for c in sent["clocks"].values() if c and c[0] == "ready"]
    return {
        "receivers": n,
        "failed": len(sent["failed"]),
        "ready": ready,
        "ready_ms_max": max(after) if after else None,
        "bit_exact": exact,
        "receivers_with_errors": with_errors,
        "start_s": sent["start_s"],
        "daemon_cpu_pct": sent["daemon_cpu_pct"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing", default="8,32,64", help="receiver counts for the timing run")
    parser.add_argument("--play", type=int, default=8, help="receivers in the session run (0: no)")
    parser.add_argument("--seconds", type=float, default=10.0, help="steady-state window")
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        targets = [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in args.drive.split(",")]
        print(json.dumps(asyncio.run(_drive(targets))), flush=True)
        return 0
    timing_runs: list[dict[str, Any]] = []
    result: dict[str, object] = {"timing": timing_runs, "play": None}
    for n in [int(x) for x in args.timing.split(",") if x]:
        figures = run_timing(n, args.seconds)
        timing_runs.append(figures)
        print(
            f"timing n={n}: {figures['ready']}/{n} ready (median {figures['ready_s_median']} s, "
            f"max {figures['ready_s_max']} s), {figures['locked']} locked, offset error ≤ "
            f"{figures['offset_error_us_max']} µs, daemon CPU {figures['daemon_cpu_pct_steady']} %"
            f" ({figures['daemon_cpu_pct_per_receiver']} % per receiver; "
            f"{figures['daemon_cpu_pct_readiness']} % while becoming ready)",
            flush=True,
        )
    if args.play:
        play = run_play(args.play)
        result["play"] = play
        print(
            f"play n={play['receivers']}: {play['ready']} clock ready (max "
            f"{play['ready_ms_max']} ms), {play['bit_exact']} bit-exact, {play['failed']} failed,"
            f" {play['receivers_with_errors']} receivers reported errors,"
            f" start {play['start_s']} s, daemon CPU {play['daemon_cpu_pct']} %",
            flush=True,
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
