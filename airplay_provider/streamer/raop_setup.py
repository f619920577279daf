"""RTSP session set-up helpers shared by the streamers: error codes for receiver answers and
legacy RAOP pair-verify (A.17)."""

from __future__ import annotations

from airplay_provider.protocol.rtsp import RtspError
from airplay_provider.protocol.streamer_status import ErrorCode, StreamerError
from airplay_provider.streamer.rtsp_client import RtspClient, RtspClientError

_STATUS_ERRORS = {
    403: (ErrorCode.FORBIDDEN, "receiver needs pairing/verification (403)"),
    453: (ErrorCode.BUSY, "receiver is busy with another sender (453)"),
    470: (ErrorCode.PAIRING_REQUIRED, "receiver requires pairing (470)"),
}


def expect_ok(method: str, status_code: int) -> None:
    """Raise a `StreamerError` with a clear code unless the receiver answered 200."""
    if status_code == 200:
        return
    code, message = _STATUS_ERRORS.get(
        status_code, (ErrorCode.REJECTED, f"receiver answered {status_code}")
    )
    raise StreamerError(code, f"{method}: {message}")


async def legacy_pair_verify(rtsp: RtspClient, secret_hex: str) -> None:
    """Legacy RAOP pair-verify with the stored secret; RTSP then goes on in clear."""
    # Loaded only for paired devices: cryptography costs start-up time.
    from airplay_provider.pairing.client import legacy_pair_verify as verify  # noqa: PLC0415
    from airplay_provider.protocol.hap.credentials import LegacyCredentials  # noqa: PLC0415
    from airplay_provider.protocol.hap.errors import HapError, HttpStatusError  # noqa: PLC0415

    try:
        # Verify needs only the secret (our Ed25519 seed); the client id is for pair-setup.
        credentials = LegacyCredentials(client_id=bytes(8), secret=bytes.fromhex(secret_hex))
    except (ValueError, HapError) as exc:
        raise StreamerError(ErrorCode.USAGE, f"-secret must be 64 hex characters: {exc}") from exc
    try:
        # Nothing else is in flight during set-up, so the flow may drive the wire directly.
        await verify(rtsp.connection, credentials, request_timeout=rtsp.timeout)
    except HttpStatusError as exc:
        raise StreamerError(
            ErrorCode.PAIRING_FAILED, f"pair-verify refused ({exc.status}): pair the device again"
        ) from exc
    except HapError as exc:
        raise StreamerError(ErrorCode.PAIRING_FAILED, f"pair-verify failed: {exc}") from exc
    except TimeoutError as exc:
        raise RtspClientError(
            ErrorCode.TIMEOUT, f"pair-verify: no answer in {rtsp.timeout:g} s"
        ) from exc
    except RtspError as exc:
        raise RtspClientError(
            ErrorCode.BAD_RESPONSE, f"pair-verify: malformed answer: {exc}"
        ) from exc
    except (ConnectionError, OSError) as exc:
        raise RtspClientError(
            ErrorCode.CONNECTION_LOST, f"pair-verify: connection lost: {exc}"
        ) from exc
