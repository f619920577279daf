"""A pre-imported parent for streamer processes (run as ``python -m airplay_provider.fork_server
FD``): it imports the streamers once, then forks one child per request.

Starting a cold interpreter for each `cliraop` costs ~0.17 s of CPU (mostly imports); a group of
32 started at once spends seconds of a 2-core machine on that. A forked child of this process
starts in milliseconds and runs the very same entry point (`cliraop.main` / `cliap2.main`) with
the same arguments, stdin and stderr, so it keeps the contract of `bin/cliraop`, which stays the
launcher for everyone else (Music Assistant).

Wire (a SOCK_SEQPACKET socket inherited as FD): the client sends ``{"id", "program", "argv"}``
with two descriptors attached (the child's stdin and stderr); the server answers
``{"id", "pid"}`` (or ``{"id", "error"}``) and later ``{"exited": pid, "code": n}``, with the
code as `asyncio.subprocess.Process.returncode` has it (−signal when killed). The server exits
when the socket closes; its children live on in their own sessions until their input ends.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Final

PROGRAMS: Final = {
    "cliraop": "airplay_provider.streamer.cliraop",
    "cliap2": "airplay_provider.streamer.cliap2",
}
#: Loaded by the streamers only when needed (encryption, pairing): imported here once instead.
PRELOAD: Final = (
    "airplay_provider.protocol.raop_crypto",
    "airplay_provider.pairing.client",
    "airplay_provider.protocol.hap.credentials",
)
MAX_MESSAGE: Final = 1 << 16

EntryPoint = Callable[[list[str] | None], int]


def _reap(sock: socket.socket) -> None:
    """Report every child that exited."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        message = {"exited": pid, "code": os.waitstatus_to_exitcode(status)}
        with contextlib.suppress(OSError):
            sock.send(json.dumps(message).encode())


def _child(
    entry: EntryPoint, argv: list[str], fds: list[int], keep_out: list[int], pass_fd: int | None
) -> None:
    """In the forked child: become the streamer with `fds` as stdin and stderr (and a third
    descriptor, if any, as `pass_fd`); never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        for fd in keep_out:
            os.close(fd)
        os.setsid()  # like start_new_session: a Ctrl-C reaches the client only
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fds[0], 0)
        os.dup2(devnull, 1)
        os.dup2(fds[1], 2)
        if pass_fd is not None:
            os.dup2(fds[2], pass_fd)  # not inheritable by the streamer's own children
        for fd in {*fds, devnull} - {pass_fd}:
            if fd > 2:
                os.close(fd)
        code = entry(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _serve_one(sock: socket.socket, entries: dict[str, EntryPoint], keep_out: list[int]) -> bool:
    """Take one request; False when the client is gone."""
    try:
        data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 3)
    except InterruptedError:
        return True
    if not data:
        return False
    try:
        request = json.loads(data)
        entry = entries[request["program"]]
        argv = [str(arg) for arg in request["argv"]]
        pass_fd = request.get("pass_fd")
        if pass_fd is not None and (not isinstance(pass_fd, int) or pass_fd <= 2):
            raise ValueError(f"bad pass_fd {pass_fd!r}")
        if len(fds) != (2 if pass_fd is None else 3):
            raise ValueError("need stdin and stderr descriptors (and pass_fd's)")
    except (ValueError, KeyError, TypeError) as exc:
        for fd in fds:
            os.close(fd)
        reply: dict[str, object] = {"id": None, "error": f"bad request: {exc}"}
        with contextlib.suppress(Exception):
            reply["id"] = json.loads(data).get("id")
        sock.send(json.dumps(reply).encode())
        return True
    pid = os.fork()
    if pid == 0:
        _child(entry, argv, fds, [fd for fd in keep_out if fd != pass_fd], pass_fd)
    for fd in fds:
        os.close(fd)
    sock.send(json.dumps({"id": request.get("id"), "pid": pid}).encode())
    return True


def serve(sock: socket.socket) -> None:
    """Answer spawn requests on `sock` until it closes."""
    entries: dict[str, EntryPoint] = {
        name: importlib.import_module(module).main for name, module in PROGRAMS.items()
    }
    for module in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the client ends us by closing the socket
    keep_out = [sock.fileno(), wake_r, wake_w]
    sock.send(json.dumps({"ready": os.getpid()}).encode())
    while True:
        try:
            readable, _, _ = select.select([sock.fileno(), wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
            _reap(sock)
        if sock.fileno() in readable and not _serve_one(sock, entries, keep_out):
            return


def main() -> int:
    """Entry point: ``python -m airplay_provider.fork_server FD``."""
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        print("usage: python -m airplay_provider.fork_server FD", file=sys.stderr)
        return 2
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        serve(sock)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client went away: nothing left to serve
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
