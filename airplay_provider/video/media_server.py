"""A temporary HTTP server that lets a device fetch one local file (range requests work).

It listens on one address (the one the device reaches us on), serves the file at an
unguessable path and nothing else, and is closed when playback ends or stops.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from aiohttp import web

from airplay_provider.protocol.video import UrlPlaybackError

LOG = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT_S = 2.0


class MediaServer:
    """``async with MediaServer(path, host) as server:`` serves `path` at ``server.url``."""

    def __init__(self, path: Path, host: str) -> None:
        if not path.is_file():
            raise UrlPlaybackError(f"not a readable file: {path}")
        self.path = path.resolve()
        self.host = host
        self.route = f"/{secrets.token_urlsafe(16)}/{quote(self.path.name)}"
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Where the device fetches the file."""
        host = f"[{self.host}]" if ipaddress.ip_address(self.host).version == 6 else self.host
        return f"http://{host}:{self.port}{self.route}"

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        LOG.debug("media request %s Range=%s", request.method, request.headers.get("Range"))
        return web.FileResponse(self.path)

    async def start(self) -> None:
        """Listen on `host`, a free port."""
        app = web.Application()
        app.router.add_get(self.route, self._serve)  # GET and HEAD; other paths: 404
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, 0)
        try:
            await site.start()
        except OSError as exc:
            await self.close()
            raise UrlPlaybackError(f"cannot serve {self.path.name} on {self.host}: {exc}") from exc
        self.port = int(runner.addresses[0][1])

    async def close(self) -> None:
        """Stop serving; open connections are closed (bounded)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> MediaServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
