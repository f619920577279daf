"""Compressed ALAC frames: 352 stereo frames, 16 or 24 bit (docs/protocol.md A.11, A.11b).

Our own encoder, written from the public description of the ALAC bitstream. One frame is a
channel pair element (CPE) then the END tag:

- header: element 1, tag 0, 12 unused bits, has-size 0, shift bytes, escape 0;
- stereo mixing ``mixBits``/``mixRes``: we always send mid/side (1, 1), so the channels are
  ``u = (l + r) >> 1`` and ``v = l - r``, both coded with ``chanBits = bits - 8*shift + 1``;
- per channel: mode 0, ``denShift`` 9, ``pbFactor`` 4, ``numU`` 1 and one 16-bit coefficient:
  the decoder's adaptive FIR of order 1, ``x[i] = x[i-2] + ((c*(x[i-1]-x[i-2]) + 256) >> 9)
  + e[i]``, after which ``c`` moves by one step towards a smaller error (sign-sign LMS). The
  encoder runs the same adaptation, so both sides see the same ``c``; its starting value is
  where the previous packet left it (the decoder learns it from the frame, packets stay
  independent);
- 24 bit: the low byte of every sample is sent raw (shift 1) and the high 16 bits coded as
  above;
- residuals coded with ALAC's adaptive Golomb-Rice code (history multiplier ``pb`` 40,
  initial history ``mb`` 10, parameter limit ``kb`` 14, the fmtp defaults) including the
  zero-run mode when the history falls under 128.

A frame that would not be smaller than the uncompressed (escape) frame is sent uncompressed.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from airplay_provider.protocol.alac import FRAMES_PER_ALAC_FRAME, AlacError, encode_uncompressed

_N = FRAMES_PER_ALAC_FRAME
_PB = 40  # fmtp pb (history multiplier) x pbFactor 4 / 4
_MB = 10  # fmtp mb: initial history
_KB = 14  # fmtp kb: largest Rice parameter
_DEN_SHIFT = 9
_ROUND = 1 << (_DEN_SHIFT - 1)
_C_MIN, _C_MAX = -512, 1536  # starting coefficient kept in a sane range (Q9: -1 .. 3)
_CH_BITS = 17  # 16 significant bits + 1 for the side channel
_WRAP = 1 << _CH_BITS
_HALF = _WRAP >> 1
_ESCAPE_VALUE = 0x1FF  # nine 1 bits: the value follows in chanBits (or 16) bits
_FLUSH_BITS = 192


def _rice_tables() -> tuple[list[int], list[int]]:
    """Per history bucket ``h >> 9`` (history < 2**25): Rice parameter k and 2**k - 1."""
    ks = [min((b + 3).bit_length() - 1, _KB) for b in range(1 << 16)]
    return ks, [(1 << k) - 1 for k in ks]


_K_OF, _DIV_OF = _rice_tables()


class _NeedsEscape(Exception):
    """A channel this encoder would not code identically for every known decoder."""


def _run_parameter(history: int) -> int:
    """Rice parameter of a zero-run length (history 1..127)."""
    return 7 - (history.bit_length() - 1) + ((history + 16) >> 6)


def _code_run(run: int, history: int) -> tuple[int, int]:
    """(bits, length) of a zero-run length: Golomb-Rice with a 16-bit escape."""
    k = _run_parameter(history)
    div = (1 << k) - 1
    m, r = divmod(run, div)
    if m > 8:
        return (_ESCAPE_VALUE << 16) | run, 25
    if r:
        return ((((1 << m) - 1) << (k + 1)) | (r + 1)), m + 1 + k
    return ((1 << m) - 1) << k, m + k


def _encode_channel(x: list[int], coef: int) -> tuple[list[tuple[int, int]], int]:
    """Predict and Rice-code one channel of 352 samples (17-bit range).

    Returns the coded bits as (value, length) chunks and the coefficient left after the
    adaptation. Raises _NeedsEscape in the rare cases where decoders disagree.
    """
    chunks: list[tuple[int, int]] = []
    acc = 0
    nbits = 0
    history = _MB
    k_of = _K_OF
    div_of = _DIV_OF
    c = coef
    zeros_from = -1  # index up to which samples were sent as a zero run
    modifier = 0
    last = _N - 1
    prev2 = 0
    prev1 = 0
    for i, s in enumerate(x):
        if i >= 2:
            d1 = prev1 - prev2
            e = s - prev2 - ((c * d1 + _ROUND) >> _DEN_SHIFT)
            if e > 0:
                if d1 > 0:
                    c += 1
                elif d1 < 0:
                    c -= 1
            elif e < 0:
                if d1 > 0:
                    c -= 1
                elif d1 < 0:
                    c += 1
        elif i == 1:
            e = s - prev1
        else:
            e = s
        prev2 = prev1
        prev1 = s
        if not -_HALF <= e < _HALF:
            raise _NeedsEscape
        if i <= zeros_from:
            continue  # inside a zero run already sent
        n = (e << 1) ^ (e >> 31)
        stored = n - modifier
        bucket = history >> 9
        m, r = divmod(stored, div_of[bucket])
        if m > 8:
            acc = (acc << 26) | (_ESCAPE_VALUE << 17) | stored
            nbits += 26
        elif r:
            k = k_of[bucket]
            acc = (acc << (m + 1 + k)) | (((1 << m) - 1) << (k + 1)) | (r + 1)
            nbits += m + 1 + k
        else:
            k = k_of[bucket]
            acc = (acc << (m + k)) | (((1 << m) - 1) << k)
            nbits += m + k
        if n > 0xFFFF:
            if modifier and n == 0x10000:
                raise _NeedsEscape  # decoders differ on clamping after a zero run
            history = 0xFFFF
        else:
            history += n * _PB - ((history * _PB) >> 9)
        modifier = 0
        if history < 128 and i < last:
            run = _zero_run(x, i + 1, c, prev2, prev1)
            value, length = _code_run(run, history)
            acc = (acc << length) | value
            nbits += length
            zeros_from = i + run
            modifier = 1
            history = 0
        if nbits >= _FLUSH_BITS:
            chunks.append((acc, nbits))
            acc = 0
            nbits = 0
    chunks.append((acc, nbits))
    return chunks, c


def _zero_run(x: list[int], start: int, c: int, prev2: int, prev1: int) -> int:
    """How many residuals from `start` on are zero (the predictor keeps running meanwhile)."""
    run = 0
    for i in range(start, _N):
        s = x[i]
        if i >= 2:
            d1 = prev1 - prev2
            e = s - prev2 - ((c * d1 + _ROUND) >> _DEN_SHIFT)
        else:
            e = s - prev1
        if e:
            break
        run += 1
        prev2 = prev1
        prev1 = s
    return run


def _bits_to_bytes(chunks: list[tuple[int, int]]) -> bytes:
    """Concatenate (value, length) chunks MSB first, then zero-pad to whole bytes."""
    text = "".join([format(value, f"0{length}b") for value, length in chunks if length])
    text += "0" * (-len(text) % 8)
    return int(text, 2).to_bytes(len(text) // 8, "big")


def _channel_head(coef: int) -> int:
    """mode 0, denShift 9, pbFactor 4, numU 1, then the 16-bit coefficient: 32 bits."""
    return (((_DEN_SHIFT << 3) | 4) << 5 | 1) << 16 | (coef & 0xFFFF)


def _escape_frame_bytes(bits: int) -> int:
    """Size of the uncompressed frame: 23 header bits, the samples, END, padding."""
    return (23 + _N * 2 * bits + 3 + 7) // 8


def _split24(pcm: bytes | bytearray | memoryview) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """s24le stereo → high 16 bits of left and right (signed), low bytes as 16-bit chunks."""
    data = bytes(pcm)
    top = bytearray(len(data) // 3 * 2)
    top[0::2], top[1::2] = data[1::3], data[2::3]
    high = array("h")
    high.frombytes(top)
    lows = data[0::3]
    low = [(int.from_bytes(lows, "big"), len(lows) * 8)]
    return high[0::2].tolist(), high[1::2].tolist(), low


def _escape24(pcm: bytes | bytearray | memoryview) -> bytes:
    """Uncompressed 24-bit stereo frame: header (escape), big-endian 24-bit samples, END."""
    data = bytes(pcm)
    swapped = bytearray(len(data))
    swapped[0::3], swapped[1::3], swapped[2::3] = data[2::3], data[1::3], data[0::3]
    return _bits_to_bytes([((1 << 20) | 1, 23), (int.from_bytes(swapped, "big"), len(data) * 8), (7, 3)])


@dataclass
class AlacEncoder:
    """Encodes 352-frame stereo packets; keeps each channel's last coefficient as the next
    packet's starting point (the decoder reads it from every frame)."""

    bits: int = 16
    #: frames sent compressed / uncompressed since the start (for statistics).
    compressed: int = 0
    uncompressed: int = 0

    def __post_init__(self) -> None:
        if self.bits not in (16, 24):
            raise AlacError(f"ALAC bit depth must be 16 or 24, got {self.bits}")
        self._coefs = (512, 512)
        self._pcm_bytes = _N * 2 * (self.bits // 8)
        self._escape_bytes = _escape_frame_bytes(self.bits)

    @property
    def pcm_bytes(self) -> int:
        """Bytes of PCM one frame takes."""
        return self._pcm_bytes

    def encode(self, pcm: bytes | bytearray | memoryview) -> bytes:
        """352 frames of s16le (or s24le) stereo PCM → one ALAC frame, compressed if smaller."""
        if len(pcm) != self._pcm_bytes:
            raise AlacError(f"expected {self._pcm_bytes} bytes of PCM, got {len(pcm)}")
        if self.bits == 16:
            samples = array("h")
            samples.frombytes(pcm)
            left, right = samples[0::2].tolist(), samples[1::2].tolist()
            low: list[tuple[int, int]] = []
        else:
            left, right, low = _split24(pcm)
        u = [(a + b) >> 1 for a, b in zip(left, right)]
        v = [a - b for a, b in zip(left, right)]
        cu, cv = self._coefs
        try:
            u_chunks, u_end = _encode_channel(u, cu)
            v_chunks, v_end = _encode_channel(v, cv)
        except _NeedsEscape:
            return self._escape(pcm)
        self._coefs = (min(max(u_end, _C_MIN), _C_MAX), min(max(v_end, _C_MIN), _C_MAX))
        shift = 1 if self.bits == 24 else 0
        head = [
            ((1 << 20) | (shift << 1), 23),  # CPE, tag 0, unused 0, no size, shift, compressed
            ((1 << 8) | 1, 16),  # mixBits 1, mixRes 1: mid/side
            (_channel_head(cu), 32),
            (_channel_head(cv), 32),
        ]
        frame = _bits_to_bytes(head + low + u_chunks + v_chunks + [(7, 3)])
        if len(frame) >= self._escape_bytes:
            return self._escape(pcm)
        self.compressed += 1
        return frame

    def _escape(self, pcm: bytes | bytearray | memoryview) -> bytes:
        self.uncompressed += 1
        if self.bits == 16:
            return encode_uncompressed(pcm)
        return _escape24(pcm)
