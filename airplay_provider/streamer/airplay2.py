"""The AirPlay 2 transport: the control session of streamer/airplay2_control.py plus a
realtime (type 96, here) or buffered (type 103, streamer/airplay2_buffered.py) stream.

The stream type follows `--stream-type` (auto: buffered when the receiver offers it and is not
an Apple model); 24-bit 48 kHz input (`--bits 24 --rate 48000`) needs it to be buffered.
Realtime: SETUP stream (type 96, ALAC, `shk`), ChaCha20-Poly1305 audio over UDP, 0xD4 sync on
NTP sessions and 0xD7 on PTP ones, resends, FLUSH with RTP-Info. Both end with TEARDOWN of
stream then session. A FLUSH (ACTION=FLUSH) keeps the session and the RTP timeline: new audio
follows a short pre-roll, without new pairing or SETUP.
"""

from __future__ import annotations

import os

from airplay_provider.protocol import ap2
from airplay_provider.protocol.ap2_buffered import StreamType, choose_stream_type, format_possible
from airplay_provider.protocol.rtp import audio_packet
from airplay_provider.protocol.streamer_status import Connected, ErrorCode, StreamerError
from airplay_provider.protocol.timing import unix_ns_from_ntp
from airplay_provider.streamer.airplay2_buffered import BufferedAudio
from airplay_provider.streamer.airplay2_control import PLIST_HEADERS, Ap2Control
from airplay_provider.streamer.airplay2_options import Ap2Options
from airplay_provider.streamer.raop import ntp_sync_packet
from airplay_provider.streamer.raop_setup import expect_ok
from airplay_provider.streamer.rtsp_client import RtspClient
from airplay_provider.streamer.status import StatusWriter
from airplay_provider.streamer.stream_loop import StreamLoop
from airplay_provider.streamer.transport import Link, LoopView, Slot
from airplay_provider.streamer.udp_audio import UdpAudioPath, family_of


class Ap2Transport:
    """One AirPlay 2 session: the `Transport` of a `cliap2` stream."""

    def __init__(self, loop: LoopView, options: Ap2Options) -> None:
        self.loop = loop
        self.options = options
        self.control = Ap2Control(loop, options)
        self.udp = UdpAudioPath(loop)
        self.sealer: ap2.AudioSealer | None = None
        self.ssrc = 0
        self.buffered: BufferedAudio | None = None
        self._stream_type: StreamType = "realtime"

    @property
    def stream_type(self) -> str | None:
        """`realtime` or `buffered` (decided once the receiver's /info is known)."""
        return self._stream_type

    @property
    def rtsp(self) -> RtspClient | None:
        """The encrypted control connection while the session is up."""
        return self.control.rtsp

    async def connect(self) -> Link:
        """info → pairing → SETUP session → events → RECORD → SETPEERS → SETUP stream."""
        opts, control = self.loop.opts, self.control
        rtsp, info = await control.pair()
        self._stream_type = choose_stream_type(
            self.options.stream_type, features=info.features, model=info.model
        )
        pcm = self.loop.opts.pcm
        self.loop.status.log(
            f"stream type {self._stream_type} ({self.options.stream_type}; "
            f"features 0x{info.features:X}, model {info.model or '?'}), {pcm} PCM"
        )
        if not format_possible(pcm, self._stream_type):
            raise StreamerError(
                ErrorCode.FORMAT_UNSUPPORTED,
                f"{pcm.bits}-bit {pcm.rate} Hz needs a buffered stream, and this receiver "
                f"gets a {self._stream_type} one (it does not offer buffered audio, feature "
                "bit 40, or is an Apple model): send --bits 16 --rate 44100",
            )
        family = family_of(rtsp.peer_address)
        if self._stream_type == "realtime":
            self.udp.open_control(family)
        # The NTP responder also exists on PTP sessions (unused there): the shared pacing loop
        # waits on it, and it costs one idle socket. Buffered NTP sessions need it too.
        timing = self.udp.open_timing(family)
        await control.choose_timing(info, rtsp.peer_address)
        session_id = await control.setup_session(timing_port=timing.endpoint.port)
        if self._stream_type == "buffered":
            self.buffered = BufferedAudio(self.loop, control)
            await self.buffered.setup(rtsp, session_id)
        else:
            await self._setup_stream(rtsp, session_id)
        self.loop.place_start()
        return Link(
            log=f"connected to {rtsp.peer_address} on port {opts.port} ({control.timing} timing)",
            event=Connected(
                host=rtsp.peer_address,
                port=opts.port,
                latency_ms=opts.latency_ms,
                timing=control.timing,
                pairing=control.method,
            ),
        )

    async def _setup_stream(self, rtsp: RtspClient, session_id: int) -> None:
        assert self.udp.control is not None
        shk = os.urandom(ap2.AUDIO_KEY_BYTES)
        body = ap2.setup_stream(
            shk=shk, control_port=self.udp.control.endpoint.port, connection_id=session_id
        )
        response = await rtsp.request("SETUP", self.control.uri, headers=PLIST_HEADERS, body=body)
        expect_ok("SETUP stream", response.status)
        try:
            reply = ap2.parse_setup_stream_reply(response.body)
        except ap2.Ap2Error as exc:
            raise StreamerError(ErrorCode.BAD_RESPONSE, str(exc)) from exc
        self.sealer = ap2.AudioSealer(shk)
        self.ssrc = 0 if self.control.lease is not None else session_id
        peer_ip = rtsp.peer_address
        self.udp.audio_addr = (peer_ip, reply.data_port)
        self.udp.control_addr = (peer_ip, reply.control_port)

    async def open_audio(self) -> None:
        """Feedback keepalive, the UDP audio socket, the timing wait (none on PTP)."""
        if self.control.lease is not None and self.udp.timing is not None:
            self.udp.timing.answered.set()  # PTP: nothing to wait for
        self.loop.spawn(self.control.feedback())
        if self.buffered is not None:
            assert self.control.rtsp is not None
            await self.buffered.open(self.control.rtsp)
        else:
            await self.udp.open_audio()

    async def started(self) -> None:
        """Buffered: anchor playback; realtime: nothing, the first sync packet anchors it."""
        if self.buffered is not None:
            await self.buffered.start()

    def send(self, pcm: bytes, slot: Slot) -> bytes:
        """RTP header in clear, ALAC payload sealed with ChaCha20-Poly1305 (B.14)."""
        if self.buffered is not None:
            return self.buffered.send(pcm, slot)
        assert self.sealer is not None
        header = audio_packet(
            seq=slot.seq, timestamp=slot.rtptime, ssrc=self.ssrc, payload=b"", marker=slot.first
        )
        wire = self.sealer.seal(header, self.loop.alac_frame(pcm))
        self.udp.send(wire, first=slot.first, sync=lambda: self._sync_packet(slot))
        return wire

    def send_copy(self, wire: bytes) -> bool:
        """Realtime: once more on the audio port (pacer.py, Copies); buffered (TCP): nothing."""
        return self.buffered is None and self.udp.send_copy(wire)

    def _sync_packet(self, slot: Slot) -> bytes:
        lease = self.control.lease
        if lease is None:
            return ntp_sync_packet(self.loop, slot)
        timeline = self.loop.timeline
        anchor = slot.sample - ap2.PTP_ANCHOR_OFFSET
        play_unix_ns = unix_ns_from_ntp(timeline.play_ntp_of(anchor))
        return ap2.ptp_sync_packet(
            first=slot.first,
            rtp_frame=slot.rtptime,
            ptp_ns=play_unix_ns + self.control.ptp_minus_unix_ns,
            clock_id=lease.clock_id,
        )

    async def flush(self, slot: Slot) -> None:
        """FLUSH with the next packet's seq and rtptime, as RAOP (B.18); buffered: rate 0 and
        FLUSHBUFFERED."""
        if self.buffered is not None:
            await self.buffered.flush(slot)
            return
        assert self.control.rtsp is not None
        await self.control.rtsp.request(
            "FLUSH",
            self.control.uri,
            headers={"RTP-Info": f"seq={slot.seq};rtptime={slot.rtptime}"},
        )

    def resumed(self) -> None:
        """Buffered: anchor the restarted timeline; realtime: its first sync packet does."""
        if self.buffered is not None:
            self.loop.spawn(self.buffered.anchor_in_background())

    async def set_parameter(self, headers: dict[str, str], body: bytes) -> int | None:
        """SET_PARAMETER on the session; the answer's status (None: no session)."""
        return await self.control.set_parameter(headers, body)

    def handle_command(self, key: str, value: str) -> bool:
        """`PIN=<digits>` feeds the pairing."""
        if key != "PIN":
            return False
        self.control.provide_pin(value)
        return True

    async def teardown(self) -> bool:
        """TEARDOWN the stream, then the session; close every connection (bounded)."""
        stream = None
        if self.buffered is not None:
            self.buffered.stop_watching()
            if self.buffered.sealer is not None:
                stream = ap2.teardown_stream(ap2.STREAM_TYPE_BUFFERED)
        elif self.sealer is not None:
            stream = ap2.teardown_stream()
        return await self.control.teardown(stream)

    def close(self) -> None:
        """Release sockets and tasks (idempotent); connections were closed by `teardown`."""
        self.udp.close()
        if self.buffered is not None:
            self.buffered.close()
        self.control.close()


def airplay2_streamer(
    options: Ap2Options, status: StatusWriter, *, input_fd: int = 0
) -> StreamLoop:
    """The `cliap2` stream: the streaming loop driving an `Ap2Transport`."""
    return StreamLoop(
        options.common, status, lambda loop: Ap2Transport(loop, options), input_fd=input_fd
    )
