"""Listen along: an opt-in RTSP server that lets VLC or ffmpeg hear what a session's rooms play.

One TCP port; each registered session is a path. A client runs OPTIONS → DESCRIBE → SETUP
(RTP/AVP/TCP, interleaved) → PLAY and then receives RTP/L16/44100/2 (RTP/L24/48000/2 from a
hi-res session) on the same connection (protocol/rtsp_listen.py answers the requests,
protocol/rtp_l16.py builds the packets).

The session hands every chunk of PCM it gives its members to `_Stream.tap` (session frame,
s16le, or s24le in a hi-res session). The stream releases each chunk when it becomes audible
in the rooms (minus `RELEASE_EARLY_S`) to every playing listener. A listener is a bounded
queue: its connection's write buffer may hold `QUEUE_S` of audio (and the kernel a small send
buffer); a listener that falls further behind (stalled, too slow) is dropped at once. Writes
never wait, so no listener slows the rooms or another listener.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
from typing import Final

from airplay_provider.protocol.errors import AirplayError
from airplay_provider.protocol.pcm_format import PcmFormat
from airplay_provider.protocol.rtp_l16 import MAX_PACKET_FRAMES, L16Packetizer, pcm_to_be
from airplay_provider.protocol.rtsp_listen import (
    SESSION_TIMEOUT_S,
    ListenConnection,
    ListenProtocolError,
    Play,
    Teardown,
)
from airplay_provider.protocol.timing import ntp_add_ns
from airplay_provider.session import SessionState, StreamSession

QUEUE_S: Final = 1.0  # audio a listener's connection may have queued before it is dropped
SEND_BUFFER_BYTES: Final = 65536  # kernel send buffer per listener (small: a stall shows soon)
RELEASE_EARLY_S: Final = 0.1  # a chunk leaves this long before the rooms play it
IDLE_TIMEOUT_S: Final = 2.0 * SESSION_TIMEOUT_S  # no request for this long: the client is gone
PUMP_MAX_SLEEP_S: Final = 0.05  # re-read the session's timeline at least this often
CLOSE_TIMEOUT_S: Final = 1.0


def _queue_bytes(pcm_format: PcmFormat) -> int:
    """`QUEUE_S` of audio in `pcm_format`, plus RTP headers."""
    return round(QUEUE_S * pcm_format.rate * pcm_format.bytes_per_frame * 1.01)


log = logging.getLogger(__name__)


class ListenAlongError(AirplayError):
    """The server cannot do what was asked (a path taken twice, not started)."""


class _Listener:
    """One playing client: its packetiser and its connection's bounded write queue."""

    def __init__(self, writer: asyncio.StreamWriter, play: Play, pcm_format: PcmFormat) -> None:
        self.writer = writer
        self.packetizer = L16Packetizer(
            ssrc=play.ssrc,
            first_seq=play.first_seq,
            first_timestamp=play.first_timestamp,
            channel=play.channel,
            pcm_format=pcm_format,
        )
        self.queue_bytes = _queue_bytes(pcm_format)
        self.dropped = False

    def send(self, big: bytes) -> bool:
        """Queue big-endian PCM; False if the connection is closing, or its queue is full (then
        `dropped` and the connection aborted)."""
        transport = self.writer.transport
        if self.dropped or transport.is_closing():
            return False
        data = self.packetizer.packetize_be(big)
        if transport.get_write_buffer_size() + len(data) > self.queue_bytes:
            self.dropped = True
            transport.abort()
            return False
        self.writer.write(data)
        return True


class _Stream:
    """One session's audio, released to its listeners on the rooms' timeline."""

    def __init__(self, path: str, session: StreamSession) -> None:
        self.path = path
        self.session = session
        self.listeners: list[_Listener] = []
        self.dropped = 0  # listeners dropped for falling behind
        self.ended = False  # the session ended and its listeners were let go
        self._pending: collections.deque[tuple[int, bytes]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._pump = asyncio.create_task(self._run(), name=f"listen-along {path}")

    def tap(self, first_frame: int, pcm: bytes) -> None:
        """The session's hook: `pcm` (its format) starts at session frame `first_frame`; kept
        in packet-sized pieces, each released on time."""
        size = self.session.pcm_format.bytes_per_frame
        step = MAX_PACKET_FRAMES * size
        for start in range(0, len(pcm), step):
            self._pending.append((first_frame + start // size, pcm[start : start + step]))
        self._wakeup.set()

    def _due_in_s(self, frame: int) -> float:
        session = self.session
        rate = session.pcm_format.rate
        audible = ntp_add_ns(session.start_ntp, round(frame * 1e9 / rate))
        return session.clock.seconds_until(audible) - RELEASE_EARLY_S

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            if not self._pending and self.session.state is SessionState.ENDED:
                self._end()
                return
            if not self._pending or self.session.state is SessionState.PAUSED:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), PUMP_MAX_SLEEP_S)
                continue
            frame, pcm = self._pending[0]
            wait = self._due_in_s(frame)
            if wait > 0:
                await asyncio.sleep(min(wait, PUMP_MAX_SLEEP_S))
                continue
            self._pending.popleft()
            self._release(pcm)

    def _end(self) -> None:
        """The session ended and everything was sent: close each listener after its queue."""
        self.ended = True
        for listener in self.listeners:
            listener.writer.close()
        self.listeners = []

    def _release(self, pcm: bytes) -> None:
        if not self.listeners:
            return
        big = pcm_to_be(pcm, self.session.pcm_format)
        kept = [listener for listener in self.listeners if listener.send(big)]
        behind = sum(listener.dropped for listener in self.listeners)
        if behind:
            self.dropped += behind
            log.info("listen along %s: dropped %d listener(s) that fell behind", self.path, behind)
        self.listeners = kept

    @property
    def session_ended(self) -> bool:
        """The session ended: the pump ends by itself once everything is sent."""
        return self.session.state is SessionState.ENDED

    @property
    def pump(self) -> asyncio.Task[None]:
        """The task releasing audio to the listeners."""
        return self._pump

    async def close(self) -> None:
        """Stop releasing audio; disconnect the listeners at once."""
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        for listener in self.listeners:
            listener.writer.transport.abort()
        self.listeners = []


class ListenAlongServer:
    """The RTSP server; `add(path, session)` makes a running session listenable at `path`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.requested_port = port
        self.streams: dict[str, _Stream] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound TCP port (after `start`)."""
        if self._server is None:
            raise ListenAlongError("listen-along server not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and listen (OSError if the port is taken)."""
        self._server = await asyncio.start_server(
            self._accepted, self.host, self.requested_port, reuse_address=True
        )

    def add(self, path: str, session: StreamSession) -> None:
        """Serve `session` at `path` (e.g. ``/living-room``); taps its PCM from now on."""
        if not path.startswith("/") or path != path.rstrip("/") or " " in path:
            raise ListenAlongError(f"bad stream path {path!r}")
        if path in self.streams:
            raise ListenAlongError(f"stream path {path!r} already served")
        stream = _Stream(path, session)
        self.streams[path] = stream
        session.pcm_taps.append(stream.tap)

    async def remove(self, path: str) -> None:
        """Stop serving `path`; its listeners are disconnected."""
        stream = self.streams.pop(path, None)
        if stream is not None:
            with contextlib.suppress(ValueError):
                stream.session.pcm_taps.remove(stream.tap)
            await stream.close()

    async def close(self, grace_s: float = CLOSE_TIMEOUT_S) -> None:
        """Stop listening, disconnect everyone, release every task (idempotent). Streams whose
        session ended get up to `grace_s` to hand their listeners the last audio first."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        streams = list(self.streams.values())
        if streams and all(stream.session_ended for stream in streams):
            pending = {stream.pump for stream in streams} | self._connections
            await asyncio.wait(pending, timeout=grace_s)
        for path in list(self.streams):
            await self.remove(path)
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), CLOSE_TIMEOUT_S)

    def url(self, path: str, address: str | None = None) -> str:
        """``rtsp://ADDR:PORT/PATH`` for `path` (ADDR: `address`, else the bound host)."""
        host = address or self.host
        host = f"[{host}]" if ":" in host else host
        return f"rtsp://{host}:{self.port}{path}"

    def _format_of(self, path: str) -> PcmFormat:
        return self.streams[path].session.pcm_format

    def _serving(self, path: str) -> bool:
        stream = self.streams.get(path)
        return stream is not None and not stream.ended

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, OSError) as exc:
            log.debug("listen along: connection ended: %s", exc)
        finally:
            self._connections.discard(task)
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        local = writer.get_extra_info("sockname")
        conn = ListenConnection(self._serving, host=str(local[0]), formats=self._format_of)
        listener: _Listener | None = None
        stream: _Stream | None = None
        try:
            while not conn.closed and not (listener is not None and listener.dropped):
                try:
                    data = await asyncio.wait_for(reader.read(4096), IDLE_TIMEOUT_S)
                except TimeoutError:
                    return
                if not data:
                    return
                try:
                    out, events = conn.feed(data)
                except ListenProtocolError as exc:
                    log.info("listen along: not RTSP, closing: %s", exc)
                    return
                writer.write(out)
                for event in events:
                    if isinstance(event, Play) and self._serving(event.path):
                        stream = self.streams[event.path]
                        listener = _Listener(writer, event, stream.session.pcm_format)
                        stream.listeners.append(listener)
                    elif isinstance(event, Teardown):
                        return
        finally:
            if stream is not None and listener in stream.listeners:
                stream.listeners.remove(listener)
            if not writer.transport.is_closing():
                with contextlib.suppress(ConnectionError, TimeoutError):
                    await asyncio.wait_for(writer.drain(), CLOSE_TIMEOUT_S)
