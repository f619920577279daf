"""Compressed ALAC frames: 352 stereo frames, 16 or 24 bit (docs/protocol.md A.11, A.11b).

Our own encoder, written from the public description of the ALAC bitstream. One frame is a
channel pair element (CPE) then the END tag:

- header: element 1, tag 0, 12 unused bits, has-size 0, shift bytes, escape 0;
- stereo mixing ``mixBits``/``mixRes``: we always send mid/side (1, 1), so the channels are
  ``u = (l + r) >> 1`` and ``v = l - r``, both coded with ``chanBits = bits - 8*shift + 1``;
- per channel: mode 0, ``denShift`` 9, ``pbFactor`` 4, ``numU`` 1 and one 16-bit coefficient:
  the decoder's adaptive FIR of order 1, ``x[i] = x[i-2] + ((c*(x[i-1]-x[i-2]) + 256) >> 9)
  + e[i]``, after which ``c`` moves by one step towards a smaller error (sign-sign LMS). The
  encoder runs the same adaptation, so both sides see the same ``c``. Its starting value
  (sent in the frame) is estimated from the packet itself, from the lag-1 correlation of the
  first differences on every 4th sample: so a frame depends on its 352 frames only (group
  members fed the same audio send the same bytes);
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
from itertools import islice
from operator import mul
from typing import cast

from airplay_provider.protocol.alac import FRAMES_PER_ALAC_FRAME, AlacError, encode_uncompressed
from airplay_provider.protocol.errors import AirplayError

_N = FRAMES_PER_ALAC_FRAME
_PB = 40  # fmtp pb (history multiplier) x pbFactor 4 / 4
_MB = 10  # fmtp mb: initial history
_KB = 14  # fmtp kb: largest Rice parameter
_DEN_SHIFT = 9
_ROUND = 1 << (_DEN_SHIFT - 1)
_C_MIN, _C_MAX = -512, 1536  # starting coefficient kept in a sane range (Q9: -1 .. 3)
_C_DEFAULT = 512  # Q9 1.0: predict the previous sample
_CH_BITS = 17  # 16 significant bits + 1 for the side channel
_ZEROS = [0] * _N
_ESCAPE_PREFIX = "1" * 9  # nine 1 bits: the value follows in chanBits (or 16) bits

# Samples as 32-bit signed fields of one big integer (field i = sample i): sums, differences
# and shifts of whole channels are then single big-integer operations.
_FIELD_BYTES = 4 * _N
_ALL_FIELDS = (1 << (32 * _N)) - 1
_BIAS15 = int.from_bytes(b"\x00\x80\x00\x00" * _N, "little")  # 32768 in every field
_LOW31 = int.from_bytes(b"\xff\xff\xff\x7f" * _N, "little")
_BIAS31 = int.from_bytes(b"\x00\x00\x00\x80" * _N, "little")
_FLIP_SIGN = bytes(b ^ 0x80 for b in range(256))


_BUCKETS = 1 << 14  # history >> 9 from 16381 on always gives k = 14


def _rice_tables() -> tuple[list[int], list[int], list[int]]:
    """Per history bucket ``h >> 9`` (a history at or over 2**23 raises IndexError in the
    fast loop; the general coder clamps the bucket): k, 2**k - 1 and 2**k.

    k = min(floor(log2(bucket + 3)), 14): k starts at bucket 2**k - 3."""
    ks: list[int] = []
    for k in range(1, _KB + 1):
        end = _BUCKETS if k == _KB else (1 << (k + 1)) - 3
        ks += [k] * (end - len(ks))
    divs = [(1 << k) - 1 for k in range(_KB + 1)]  # shared int objects: the tables stay small
    pows = [1 << k for k in range(_KB + 1)]
    return ks, [divs[k] for k in ks], [pows[k] for k in ks]


_K_OF, _DIV_OF, _POW_OF = _rice_tables()
#: Unary quotient m (0..8): m ones and the terminating zero.
_PREFIX = ["1" * m + "0" for m in range(9)]
#: Remainder r for parameter k at index 2**k | r: (r + 1) in k bits, or k-1 zeros for r = 0.
#: Filled for one k at a time when first needed (k = 14 alone is 16384 strings).
_SUFFIX: list[str | None] = [None] * (1 << (_KB + 1))


def _fill_suffixes(k: int) -> None:
    """Make the remainder codes of parameter k (r = 0 .. 2**k - 2) unless already made."""
    if _SUFFIX[1 << k] is None:
        codes = [format(r + 1, f"0{k}b") for r in range(1, (1 << k) - 1)]
        _SUFFIX[(1 << k) + 1 : (1 << (k + 1)) - 1] = codes
        _SUFFIX[1 << k] = "0" * (k - 1)  # last: marks k as made


class _NeedsEscape(AirplayError):
    """A channel this encoder would not code identically for every known decoder."""


def _scalar(value: int, k: int, escape_bits: int) -> str:
    """One Golomb-Rice code: m ones, a zero, the remainder; or nine ones and raw bits."""
    m, r = divmod(value, (1 << k) - 1)
    if m > 8:
        return _ESCAPE_PREFIX + format(value, f"0{escape_bits}b")
    _fill_suffixes(k)
    return _PREFIX[m] + str(_SUFFIX[(1 << k) | r])


def _fields(lo: bytes, hi: bytes) -> int:
    """Little-endian 16-bit samples (low and high bytes apart) → fields of ``sample + 32768``
    (all fields non-negative, so the integer's digits are exactly the fields)."""
    buf = bytearray(_FIELD_BYTES)
    buf[0::4], buf[1::4] = lo, hi.translate(_FLIP_SIGN)
    return int.from_bytes(buf, "little")


def _to_list(packed: int) -> list[int]:
    """Fields of a sum of signed fields (|field| < 2**31), lowest 352 → list of ints.

    Borrows between negative fields make the raw digits differ from the fields; adding 2**31
    to every field removes them (all digits non-negative), and flipping bit 31 back gives
    each field in two's complement."""
    values = array("i")
    values.frombytes(
        (((packed + _BIAS31) & _ALL_FIELDS) ^ _BIAS31).to_bytes(_FIELD_BYTES, "little")
    )
    return values.tolist()


def _mid_side(left: int, right: int) -> tuple[int, int]:
    """From biased fields: ``u = (l + r) >> 1`` (floor per field: the fields are
    non-negative, bit 0 of the next field is masked off) and ``v = l - r``, signed."""
    return (((left + right) >> 1) & _LOW31) - _BIAS15, left - right


def _starting_coefficient(d1: list[int]) -> int:
    """Q9 coefficient c for ``x[i] ≈ x[i-2] + c·(x[i-1] - x[i-2])``: 1 + the lag-1 correlation
    of the first differences (least squares), from every 4th pair (as good, 4 times cheaper)."""
    later, earlier = d1[3::4], d1[2::4]
    energy: int = sum(map(mul, earlier, earlier))
    if not energy:
        return _C_DEFAULT
    correlation: int = sum(map(mul, later, earlier))
    coef = _C_DEFAULT + (1024 * correlation + energy) // (2 * energy)
    return min(max(coef, _C_MIN), _C_MAX)


def _encode_channel(x: int) -> tuple[list[str], int]:
    """Predict and Rice-code one channel (352 samples as fields, 17-bit range).

    Returns the code as '0'/'1' strings and the starting coefficient to send.
    Raises _NeedsEscape where a residual does not fit or decoders would disagree.
    """
    # s2[i] = x[i] - x[i-2], d1[i] = x[i-1] - x[i-2]: the residual is then
    # s2 - ((c*d1 + 256) >> 9); samples 0 and 1 (raw x[0], then x[1] - x[0]) fit the same
    # formula with d1 = 0.
    s2 = _to_list(x - (x << 64))
    d1 = _to_list((x << 32) - (x << 64))
    s2[1] -= d1[1]
    d1[1] = 0
    coef = _starting_coefficient(d1)
    return _encode_fast(s2, d1, coef)[0], coef


def _encode_fast(s2: list[int], d1: list[int], coef: int) -> tuple[list[str], int]:
    """The common case, one code string per sample; hands over to _encode_tail when the
    history falls under 128 (zero runs)."""
    first = s2[0]  # sent as is: almost always an escape code (the history starts at 10)
    n = (first << 1) ^ (first >> 31)
    out = [_scalar(n, _K_OF[_MB >> 9], _CH_BITS)]
    h = 0xFFFF if n > 0xFFFF else _MB + n * _PB - ((_MB * _PB) >> 9)
    if h < 128:
        return _encode_tail(s2, d1, 0, c=coef, h=h, out=out)
    app = out.append
    # a None suffix (codes not made yet) raises TypeError below, handled there
    div_of, pow_of, suffix, prefix = _DIV_OF, _POW_OF, cast("list[str]", _SUFFIX), _PREFIX
    c = coef
    # literals, not the named constants: LOAD_CONST is cheaper than LOAD_GLOBAL per sample
    for s, d in zip(islice(s2, 1, None), islice(d1, 1, None), strict=True):
        e = s - ((c * d + 256) >> 9)  # _ROUND, _DEN_SHIFT
        if e > 0:  # the decoder's sign-sign update of the coefficient, then n = zigzag(e)
            n = e + e
            if d > 0:
                c += 1
            elif d:
                c -= 1
        elif e:
            n = ~(e + e)
            if d > 0:
                c -= 1
            elif d:
                c += 1
        else:
            n = 0
        try:  # free in the common case; the rare cases are handled below
            b = h >> 9
            q = div_of[b]
            app(prefix[n // q] + suffix[pow_of[b] + n % q])
        except (IndexError, TypeError):
            # an escape code (quotient over 8), a history over 2**23, or a Rice parameter
            # whose codes are not made yet (None)
            app(_scalar(n, _K_OF[min(h >> 9, _BUCKETS - 1)], _CH_BITS))
        if n > 0xFFFF:
            if n >> _CH_BITS:
                raise _NeedsEscape  # residual out of the 17-bit range
            h = 0xFFFF
        else:
            h += n * 40 - ((h * 5) >> 6)  # _PB; (h * 40) >> 9
        if h < 128:
            return _encode_tail(s2, d1, len(out) - 1, c=c, h=h, out=out)
    return out, c


def _encode_tail(
    s2: list[int], d1: list[int], i: int, *, c: int, h: int, out: list[str]
) -> tuple[list[str], int]:
    """The general coder from just after sample `i` on (its history `h` fell under 128):
    zero runs, the value after a run sent minus one, the clamp cases. Slower, rarely needed."""
    last = _N - 1
    modifier = 0
    while True:
        if h < 128 and 0 <= i < last:
            rest = s2[i + 1 :]
            if rest == _ZEROS[: len(rest)] and d1[i + 1 :] == _ZEROS[: len(rest)]:
                run = len(rest)  # digital silence to the end
            else:
                run = 0
                for s, d in zip(rest, d1[i + 1 :], strict=True):
                    if s - ((c * d + _ROUND) >> _DEN_SHIFT):
                        break
                    run += 1  # a zero residual leaves the coefficient as it is
            out.append(_scalar(run, 7 - (h.bit_length() - 1) + ((h + 16) >> 6), 16))
            modifier = 1
            h = 0
            i += run
        i += 1
        if i > last:
            return out, c
        d = d1[i]
        e = s2[i] - ((c * d + _ROUND) >> _DEN_SHIFT)
        if e and d:
            c += 1 if (e > 0) == (d > 0) else -1
        n = (e << 1) ^ (e >> 31)
        if n >> _CH_BITS:
            raise _NeedsEscape
        out.append(_scalar(n - modifier, _K_OF[min(h >> 9, _BUCKETS - 1)], _CH_BITS))
        if n > 0xFFFF:
            if modifier and n == 0x10000:
                raise _NeedsEscape  # decoders differ on the clamp right after a run
            h = 0xFFFF
        else:
            h += n * _PB - ((h * _PB) >> 9)
        modifier = 0


def _bits_to_bytes(parts: list[str]) -> bytes:
    """Concatenate '0'/'1' strings MSB first, then zero-pad to whole bytes."""
    text = "".join(parts)
    text += "0" * (-len(text) % 8)
    return int(text, 2).to_bytes(len(text) // 8, "big")


def _channel_head(coef: int) -> str:
    """mode 0, denShift 9, pbFactor 4, numU 1, then the 16-bit coefficient: 32 bits."""
    return format((((_DEN_SHIFT << 3) | 4) << 5 | 1) << 16 | (coef & 0xFFFF), "032b")


def encoded_escape_bytes(bits: int) -> int:
    """Size of the uncompressed frame: 23 header bits, the samples, END, padding (1412 bytes at
    16 bit, 2116 at 24)."""
    return (23 + _N * 2 * bits + 3 + 7) // 8


_ESCAPE24_BYTES = encoded_escape_bytes(24)
_ESCAPE24_PAD = _ESCAPE24_BYTES * 8 - 23 - _N * 2 * 24 - 3  # zero bits after END
# header (CPE, escape) and END tag in place; the samples go in between, as one big integer
_ESCAPE24_FIXED = (((1 << 20) | 1) << (_N * 2 * 24 + 3 + _ESCAPE24_PAD)) | (7 << _ESCAPE24_PAD)


def _escape24(pcm: bytes) -> bytes:
    """Uncompressed 24-bit stereo frame: header (escape), big-endian 24-bit samples, END."""
    swapped = bytearray(len(pcm))
    swapped[0::3], swapped[1::3], swapped[2::3] = pcm[2::3], pcm[1::3], pcm[0::3]
    samples = int.from_bytes(swapped, "big") << (3 + _ESCAPE24_PAD)
    return (_ESCAPE24_FIXED | samples).to_bytes(_ESCAPE24_BYTES, "big")


def encode_escape(pcm: bytes | bytearray | memoryview, bits: int) -> bytes:
    """One uncompressed (escape) ALAC frame of 352 stereo frames of s16le or s24le PCM."""
    if bits == 16:
        return encode_uncompressed(pcm)
    if bits != 24:
        raise AlacError(f"ALAC bit depth must be 16 or 24, got {bits}")
    if len(pcm) != _N * 6:
        raise AlacError(f"expected {_N * 6} bytes of PCM, got {len(pcm)}")
    return _escape24(bytes(pcm))


_HEADER_ESCAPE = format((1 << 20) | 1, "023b")  # CPE, tag 0, unused 0, no size, escape
_HEADER_16 = format(1 << 20, "023b")  # ... shift 0, compressed
_HEADER_24 = format((1 << 20) | (1 << 1), "023b")  # ... shift 1 (low bytes raw), compressed
_MID_SIDE = format((1 << 8) | 1, "016b")  # mixBits 1, mixRes 1
_END = "111"


@dataclass
class AlacEncoder:
    """Encodes 352-frame stereo packets (each frame depends on its own PCM only; the object
    checks the input size and counts what it sent)."""

    bits: int = 16
    #: frames sent compressed / uncompressed since the start (for statistics).
    compressed: int = 0
    uncompressed: int = 0

    def __post_init__(self) -> None:
        if self.bits not in (16, 24):
            raise AlacError(f"ALAC bit depth must be 16 or 24, got {self.bits}")
        self._pcm_bytes = _N * 2 * (self.bits // 8)
        self._escape_bytes = encoded_escape_bytes(self.bits)

    def encode(self, pcm: bytes | bytearray | memoryview) -> bytes:
        """352 frames of s16le (or s24le) stereo PCM → one ALAC frame, compressed if smaller."""
        data = bytes(pcm)
        if len(data) != self._pcm_bytes:
            raise AlacError(f"expected {self._pcm_bytes} bytes of PCM, got {len(data)}")
        if self.bits == 16:
            left = _fields(data[0::4], data[1::4])
            right = _fields(data[2::4], data[3::4])
            head = [_HEADER_16, _MID_SIDE]
            low = ""
        else:  # the top 16 bits are coded, the low bytes (interleaved) go raw
            left = _fields(data[1::6], data[2::6])
            right = _fields(data[4::6], data[5::6])
            head = [_HEADER_24, _MID_SIDE]
            low = format(int.from_bytes(data[0::3], "big"), f"0{2 * _N * 8}b")
        mid, side = _mid_side(left, right)
        try:
            u_code, cu = _encode_channel(mid)
            if sum(map(len, u_code)) >= self._escape_bytes * 8:
                raise _NeedsEscape  # noise: one channel alone is bigger than the escape frame
            v_code, cv = _encode_channel(side)
        except _NeedsEscape:
            return self._escape(data)
        head += [_channel_head(cu), _channel_head(cv), low]
        frame = _bits_to_bytes(head + u_code + v_code + [_END])
        if len(frame) >= self._escape_bytes:
            return self._escape(data)
        self.compressed += 1
        return frame

    def _escape(self, pcm: bytes) -> bytes:
        self.uncompressed += 1
        return encode_escape(pcm, self.bits)
