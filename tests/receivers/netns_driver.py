"""Emulated AirPlay 2 receivers in network namespaces, and a test's driver in the sender's.

`netns_receiver` runs one receiver (`python -m tests.receivers.ap2_netns ... --ptp`) in its
namespace and yields its port once it is ready. A session test that needs PTP is its own
driver: `run_session` starts one receiver per entry of `extras` (its emulator options), runs
``python -m MODULE ADDRESS:PORT ... [driver args]`` inside the sender's namespace (where the
shared PTP daemon lives, lingering `DAEMON_ENV`) and returns the driver's last stdout line
(JSON) and every receiver's report. `receiver_end` parses an ``ADDRESS:PORT`` on the driver's
side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.receivers.ap2_netns import in_netns, netns_hosts
from tests.receivers.ap2_sender import REPO

#: The PTP daemon of a test's sender namespace exits soon after its last streamer.
DAEMON_ENV = {"AIRPLAY_PTP_LINGER_S": "0.5"}


@asynccontextmanager
async def netns_receiver(
    namespace: str,
    address: str,
    out: Path,
    drop_rate: float = 0.0,
    extra: Sequence[str] = (),
    *,
    buffered: bool = False,
) -> AsyncIterator[tuple[int, asyncio.subprocess.Process]]:
    """A PTP receiver in `namespace` writing its report to `out`: (port, process)."""
    argv = [sys.executable, "-m", "tests.receivers.ap2_netns", address, "--ptp"]
    argv += ["--out", str(out), "--timeout", "40", "--drop-rate", str(drop_rate), *extra]
    argv += ["--buffered"] if buffered else []
    process = await asyncio.create_subprocess_exec(
        *in_netns(namespace, argv), stdout=asyncio.subprocess.PIPE, cwd=REPO
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 10.0)
        assert line.startswith(b"READY "), line
        yield int(line.split()[1]), process
        await asyncio.wait_for(process.wait(), 10.0)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def run_in_sender(
    sender: str, argv: Sequence[str], *, timeout_s: float, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run ``python -m argv...`` in the namespace `sender` (with `DAEMON_ENV` and `env`); it
    must exit 0 within `timeout_s` (else it is killed): its last stdout line, parsed."""
    process = await asyncio.create_subprocess_exec(
        *in_netns(sender, [sys.executable, "-m", *argv]),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, **DAEMON_ENV, **(env or {})},
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    result: dict[str, Any] = json.loads(stdout.decode().splitlines()[-1])
    return result


async def run_session(
    tmp_path: Path,
    module: str,
    extras: Sequence[Sequence[str]],
    *,
    timeout_s: float,
    driver_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Receivers with these emulator options, each in a namespace; the driver `module` in the
    sender's, given every receiver's ``ADDRESS:PORT`` then `driver_args`: what it printed and
    the receivers' reports (in the order of `extras`)."""
    with netns_hosts(len(extras)) as hosts:
        outs = [tmp_path / f"rx{index}.json" for index in range(len(extras))]
        async with contextlib.AsyncExitStack() as stack:
            ends = []
            for (namespace, address), out, extra in zip(hosts.receivers, outs, extras, strict=True):
                port, _ = await stack.enter_async_context(
                    netns_receiver(namespace, address, out, extra=extra)
                )
                ends.append(f"{address}:{port}")
            argv = [module, *ends, *driver_args]
            sent = await run_in_sender(hosts.sender, argv, timeout_s=timeout_s, env=env)
        reports: list[dict[str, Any]] = [json.loads(out.read_text()) for out in outs]
    return sent, reports


def receiver_end(text: str) -> tuple[str, int]:
    """``ADDRESS:PORT`` → (address, port)."""
    host, port = text.rsplit(":", 1)
    return host, int(port)
