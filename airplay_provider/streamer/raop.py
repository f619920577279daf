"""The RAOP transport: RTSP set-up (ANNOUNCE, SETUP, RECORD), AES audio over UDP, 0xD4 sync,
resends, FLUSH and TEARDOWN. The streaming loop that drives it is streamer/stream_loop.py.
"""

from __future__ import annotations

import contextlib
import os
import random
from typing import TYPE_CHECKING

from airplay_provider.protocol.rtp import audio_packet, sync_packet
from airplay_provider.protocol.rtsp import parse_transport
from airplay_provider.protocol.sdp import announce_sdp
from airplay_provider.protocol.streamer_status import Connected, ErrorCode, StreamerError
from airplay_provider.streamer.raop_options import RaopOptions
from airplay_provider.streamer.raop_setup import expect_ok, legacy_pair_verify
from airplay_provider.streamer.rtsp_client import RtspClient, RtspClientError
from airplay_provider.streamer.status import StatusWriter
from airplay_provider.streamer.stream_loop import StreamLoop
from airplay_provider.streamer.transport import Link, LoopView, Slot
from airplay_provider.streamer.udp_audio import UdpAudioPath, family_of

if TYPE_CHECKING:
    from airplay_provider.protocol.raop_crypto import AudioCipher

USER_AGENT = "iTunes/12.12 (Macintosh; OS X 14.0) AppleWebKit/0"


async def open_rtsp(
    opts: RaopOptions, *, user_agent: str, dacp_id: str | None, password: str | None = None
) -> RtspClient:
    """Connect the RTSP session with the headers every request carries (A.2)."""
    headers = {
        "User-Agent": user_agent,
        "Client-Instance": dacp_id or f"{random.getrandbits(64):016X}",
    }
    if dacp_id:
        headers["DACP-ID"] = dacp_id
    if opts.active_remote:
        headers["Active-Remote"] = opts.active_remote
    return await RtspClient.connect(
        opts.host,
        opts.port,
        timeout=5.0,
        bind_address=opts.bind_address,
        common_headers=headers,
        password=password,
        fallbacks=opts.fallback_hosts,
    )


def session_uri(local_ip: str, session_id: int) -> str:
    """`rtsp://<our address>/<session id>` (IPv6 in brackets)."""
    host = f"[{local_ip}]" if ":" in local_ip else local_ip
    return f"rtsp://{host}/{session_id}"


class RaopTransport:
    """One RAOP session: the `Transport` of a `cliraop` stream."""

    def __init__(self, loop: LoopView) -> None:
        self.loop = loop
        self.opts = loop.opts
        self.udp = UdpAudioPath(loop)
        self.ssrc = random.getrandbits(32)
        self.uri = ""
        self.cipher: AudioCipher | None = None
        self._rtsp: RtspClient | None = None

    @property
    def rtsp(self) -> RtspClient | None:
        """The RTSP connection while the session is up."""
        return self._rtsp

    @property
    def stream_type(self) -> str | None:
        """RAOP has one kind of stream."""
        return None

    async def connect(self) -> Link:
        """OPEN → ANNOUNCE → SETUP → RECORD."""
        opts, loop = self.opts, self.loop
        rtsp = self._rtsp = await open_rtsp(
            opts, user_agent=USER_AGENT, dacp_id=opts.dacp_id, password=opts.password
        )
        if opts.secret:
            await legacy_pair_verify(rtsp, opts.secret)
            loop.status.log("pair-verify done")
        local_ip = rtsp.local_address
        family = family_of(rtsp.peer_address)
        timing = self.udp.open_timing(family)
        control = self.udp.open_control(family)
        session_id = random.getrandbits(32)
        self.uri = session_uri(local_ip, session_id)

        rsa_aes_key = aes_iv = None
        extra: dict[str, str] = {"Content-Type": "application/sdp"}
        if opts.use_encryption:
            # Loaded only when encrypting: cryptography costs start-up time.
            from airplay_provider.protocol.raop_crypto import (  # noqa: PLC0415
                AudioCipher,
                apple_challenge,
                rsa_encrypt_aes_key,
            )

            aes_key, aes_iv = os.urandom(16), os.urandom(16)
            rsa_aes_key = rsa_encrypt_aes_key(aes_key)
            self.cipher = AudioCipher(aes_key, aes_iv)
            extra["Apple-Challenge"] = apple_challenge(os.urandom(16))
        sdp = announce_sdp(
            session_id=session_id,
            sender_ip=local_ip,
            receiver_ip=rtsp.peer_address,
            alac=True,
            rsa_aes_key=rsa_aes_key,
            aes_iv=aes_iv,
        )
        response = await rtsp.request("ANNOUNCE", self.uri, headers=extra, body=sdp.encode())
        if response.status == 401:
            if opts.password is None:
                raise StreamerError(
                    ErrorCode.PASSWORD_REQUIRED, "receiver requires a password (-password)"
                )
            raise StreamerError(ErrorCode.AUTH_FAILED, "receiver rejected the password")
        expect_ok("ANNOUNCE", response.status)

        transport = (
            "RTP/AVP/UDP;unicast;interleaved=0-1;mode=record;"
            f"control_port={control.endpoint.port};timing_port={timing.endpoint.port}"
        )
        response = await rtsp.request("SETUP", self.uri, headers={"Transport": transport})
        expect_ok("SETUP", response.status)
        fields = parse_transport(response.headers.get("Transport") or "")
        try:
            server_port = int(fields["server_port"])
            control_port = int(fields["control_port"])
        except (KeyError, ValueError) as exc:
            raise StreamerError(
                ErrorCode.BAD_RESPONSE, "SETUP answer lacks server_port/control_port"
            ) from exc
        self.udp.audio_addr = (rtsp.peer_address, server_port)
        self.udp.control_addr = (rtsp.peer_address, control_port)
        session = response.headers.get("Session")
        rtsp.session = session.split(";")[0].strip() if session else "1"

        loop.place_start()
        rtp_info = f"seq={loop.seq};rtptime={loop.timeline.rtp_of(loop.next_sample)}"
        response = await rtsp.request(
            "RECORD", self.uri, headers={"Range": "npt=0-", "RTP-Info": rtp_info}
        )
        expect_ok("RECORD", response.status)
        return Link(
            log=(
                f"connected to {rtsp.peer_address} on port {opts.port}, "
                f"player latency is {opts.latency_ms} ms"
            ),
            event=Connected(
                host=rtsp.peer_address,
                port=opts.port,
                latency_ms=opts.latency_ms,
                encrypted=self.cipher is not None,
                audio_latency=response.headers.get("Audio-Latency") or "",
            ),
        )

    async def open_audio(self) -> None:
        """The UDP audio socket; a short wait for the receiver's first timing request."""
        await self.udp.open_audio()

    async def started(self) -> None:
        """Nothing to do: the first sync packet anchors the stream."""

    def send(self, pcm: bytes, slot: Slot) -> bytes:
        """ALAC, AES-CBC when encrypting; a 0xD4 sync first when due."""
        payload = self.loop.alac_frame(pcm)
        if self.cipher is not None:
            payload = self.cipher.encrypt(payload)
        wire = audio_packet(
            seq=slot.seq, timestamp=slot.rtptime, ssrc=self.ssrc, payload=payload, marker=slot.first
        )
        self.udp.send(wire, first=slot.first, sync=lambda: ntp_sync_packet(self.loop, slot))
        return wire

    def send_copy(self, wire: bytes) -> bool:
        """Once more on the audio port (pacer.py, Copies)."""
        return self.udp.send_copy(wire)

    async def flush(self, slot: Slot) -> None:
        """FLUSH with the next packet's seq and rtptime (A.9)."""
        assert self._rtsp is not None
        await self._rtsp.request(
            "FLUSH", self.uri, headers={"RTP-Info": f"seq={slot.seq};rtptime={slot.rtptime}"}
        )

    def resumed(self) -> None:
        """Nothing to do: the resume's first sync packet re-anchors the stream."""

    async def set_parameter(self, headers: dict[str, str], body: bytes) -> int | None:
        """SET_PARAMETER on the session; the answer's status (None: no session)."""
        if self._rtsp is None:
            return None
        response = await self._rtsp.request("SET_PARAMETER", self.uri, headers=headers, body=body)
        return response.status

    def handle_command(self, key: str, value: str) -> bool:
        """RAOP has no commands of its own."""
        return False

    async def teardown(self) -> bool:
        """TEARDOWN and close the RTSP connection (bounded)."""
        rtsp, self._rtsp = self._rtsp, None
        if rtsp is None:
            return False
        with contextlib.suppress(RtspClientError, OSError):
            await rtsp.request("TEARDOWN", self.uri, timeout=2.0)
        await rtsp.close()
        return True

    def close(self) -> None:
        """Close the UDP sockets (idempotent)."""
        self.udp.close()


def ntp_sync_packet(loop: LoopView, slot: Slot) -> bytes:
    """The 0xD4 sync packet for the packet at `slot` (A.12)."""
    fields = loop.timeline.sync_fields(slot.sample)
    return sync_packet(
        first=slot.first, rtp_latency=fields.rtp_latency, ntp=fields.ntp, rtp_now=fields.rtp_now
    )


def raop_streamer(options: RaopOptions, status: StatusWriter, *, input_fd: int = 0) -> StreamLoop:
    """The `cliraop` stream: the streaming loop driving a `RaopTransport`."""
    return StreamLoop(options, status, RaopTransport, input_fd=input_fd)
