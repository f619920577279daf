"""`play --listen-port PORT`: serve the session over RTSP (listen_along.py) and say where."""

from __future__ import annotations

import argparse
import ipaddress
import re
from typing import TextIO

from airplay_provider.listen_along import ListenAlongServer
from airplay_provider.session import StreamSession


def stream_path(name: str) -> str:
    """The stream's path: the leading player's name, lower case, other characters as '-'."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return "/" + (slug or "session")


async def start_server(args: argparse.Namespace) -> ListenAlongServer | None:
    """Bind the server if asked (OSError: the port is taken or the address not ours)."""
    port: int | None = getattr(args, "listen_port", None)
    if port is None:
        return None
    interfaces: list[str] | None = getattr(args, "interfaces", None)
    bind = getattr(args, "listen_address", None) or (interfaces[0] if interfaces else "0.0.0.0")
    server = ListenAlongServer(bind, port)
    await server.start()
    return server


def serve(server: ListenAlongServer, session: StreamSession, name: str, err: TextIO) -> None:
    """Serve `session`; print the one `listen along: rtsp://ADDR:PORT/PATH` line on `err`."""
    path = stream_path(name)
    server.add(path, session)
    address = server.host
    if ipaddress.ip_address(address).is_unspecified:
        from airplay_provider.remote.control import local_addresses  # noqa: PLC0415 - slow

        address = local_addresses()[0]
    print(f"listen along: {server.url(path, address)}", file=err, flush=True)
