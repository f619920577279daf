"""Our own strict ALAC decoder for the receiver emulators and the encoder tests.

Independent of ``airplay_provider``: written from the public description of the bitstream
(channel pair / single channel elements, escape frames, adaptive Golomb-Rice residuals with
zero runs, the adaptive FIR predictor with orders 0, 1..30 and 31, stereo unmixing, shifted
low bytes). Output is interleaved little-endian PCM of the configured bit depth.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass
from functools import lru_cache


class AlacDecodeError(ValueError):
    """A frame this decoder (and a strict receiver) refuses."""


@dataclass(frozen=True)
class AlacConfig:
    """The fmtp / magic-cookie fields the decoder needs."""

    frame_length: int = 352
    bit_depth: int = 16
    pb: int = 40
    mb: int = 10
    kb: int = 14
    channels: int = 2


class _Bits:
    """MSB-first reader over a whole frame held as a '0'/'1' string (C-speed slicing)."""

    def __init__(self, data: bytes) -> None:
        self.size = len(data) * 8
        self.text = format(int.from_bytes(data, "big"), f"0{self.size}b") if data else ""
        self.pos = 0

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def read(self, count: int) -> int:
        end = self.pos + count
        if end > self.size:
            raise AlacDecodeError("ALAC frame ends early")
        value = int(self.text[self.pos : end], 2) if count else 0
        self.pos = end
        return value

    def signed(self, count: int) -> int:
        value = self.read(count)
        return value - (1 << count) if value >> (count - 1) else value


def _sign_extend(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _read_scalar(bits: _Bits, k: int, escape_bits: int) -> int:
    """One Golomb-Rice value: unary prefix (≤ 8 ones), or 9 ones and `escape_bits` raw bits."""
    pos = bits.pos
    zero = bits.text.find("0", pos, pos + 9)
    if zero < 0:
        if pos + 9 > bits.size:
            raise AlacDecodeError("ALAC frame ends early")
        bits.pos = pos + 9
        return bits.read(escape_bits)
    ones = zero - pos
    bits.pos = zero + 1
    if k == 1:
        return ones
    extra = bits.read(k)
    if extra > 1:
        return ones * ((1 << k) - 1) + extra - 1
    bits.pos -= 1  # only k-1 bits belonged to this value
    return ones * ((1 << k) - 1)


def _read_residuals(
    bits: _Bits, count: int, chan_bits: int, cfg: AlacConfig, mult: int
) -> list[int]:
    """`count` residuals: the sample codes read inline (this runs for every packet an
    emulator receives), zero runs through _read_scalar."""
    out: list[int] = []
    app = out.append
    text, size, find = bits.text, bits.size, bits.text.find
    pos = bits.pos
    history = cfg.mb
    modifier = 0
    done = 0
    while done < count:
        k = ((history >> 9) + 3).bit_length() - 1
        if k > cfg.kb:
            k = cfg.kb
        zero = find("0", pos, pos + 9)
        if zero < 0:  # nine ones: the value follows in chan_bits bits
            end = pos + 9 + chan_bits
            if end > size:
                raise AlacDecodeError("ALAC frame ends early")
            value = int(text[pos + 9 : end], 2)
            pos = end
        elif k == 1:
            value = zero - pos
            pos = zero + 1
        else:
            end = zero + 1 + k
            if end > size:
                raise AlacDecodeError("ALAC frame ends early")
            extra = int(text[zero + 1 : end], 2)
            value = (zero - pos) * ((1 << k) - 1)
            if extra > 1:
                value += extra - 1
                pos = end
            else:
                pos = end - 1  # only k-1 bits belonged to this value
        value += modifier
        modifier = 0
        app((value >> 1) ^ -(value & 1))
        done += 1
        if value > 0xFFFF:
            history = 0xFFFF
        else:
            history += value * mult - ((history * mult) >> 9)
        if history < 128 and done < count:
            k = min(7 - (history.bit_length() - 1) + ((history + 16) >> 6), cfg.kb)
            bits.pos = pos
            run = _read_scalar(bits, k, 16)
            pos = bits.pos
            if run > count - done:
                raise AlacDecodeError(f"zero run of {run} past the end of the frame")
            out.extend([0] * run)
            done += run
            if run <= 0xFFFF:
                modifier = 1
            history = 0
    bits.pos = pos
    return out


def _unpredict(err: list[int], coefs: list[int], shift: int, chan_bits: int) -> list[int]:
    """The decoder side of ALAC's adaptive FIR (sign-sign LMS on the coefficients)."""
    order = len(coefs)
    out = [err[0]]
    if order == 0:
        return list(err)
    if order == 31:
        for e in err[1:]:
            out.append(_sign_extend(out[-1] + e, chan_bits))
        return out
    for e in err[1 : order + 1]:
        out.append(_sign_extend(out[-1] + e, chan_bits))
    if order == 1 and shift:
        return _unpredict_first_order(out, err, coefs[0], shift, chan_bits)
    c = list(coefs)  # c[j] weighs the sample j+1 back
    for i in range(order + 1, len(err)):
        base = out[i - order - 1]
        total = sum(c[j] * (out[i - 1 - j] - base) for j in range(order))
        predicted = base + ((total + (1 << (shift - 1))) >> shift) if shift else base + total
        e = err[i]
        out.append(_sign_extend(predicted + e, chan_bits))
        sign = (e > 0) - (e < 0)
        j = order - 1  # adapt from the oldest tap on while the error keeps its sign
        while sign and e * sign > 0 and j >= 0:
            diff = base - out[i - 1 - j]
            step = ((diff > 0) - (diff < 0)) * sign
            c[j] -= step
            e -= ((diff * step) >> shift) * (order - j)
            j -= 1
    return out


def _unpredict_first_order(
    out: list[int], err: list[int], coef: int, shift: int, chan_bits: int
) -> list[int]:
    """Order 1 (the common case) written out: same rules as the general loop."""
    half = 1 << (chan_bits - 1)
    wrap = 1 << chan_bits
    rounding = 1 << (shift - 1)
    c = coef
    prev2, prev1 = out[0], out[1]
    for e in err[2:]:
        diff = prev1 - prev2
        value = prev2 + ((c * diff + rounding) >> shift) + e
        value = (value + half) % wrap - half
        if e and diff:
            c += 1 if (e > 0) == (diff > 0) else -1
        out.append(value)
        prev2, prev1 = prev1, value
    return out


@lru_cache(maxsize=4096)
def decode_alac(payload: bytes, cfg: AlacConfig = AlacConfig()) -> bytes:
    """Decode one ALAC frame (escape or compressed) into interleaved little-endian PCM.

    Cached: the members of a group receive the same frames (same PCM, same encoder state),
    so emulators in one test process decode each distinct frame once."""
    bits = _Bits(payload)
    element, _tag, unused = bits.read(3), bits.read(4), bits.read(12)
    has_size, shift_bytes, escape = bits.read(1), bits.read(2), bits.read(1)
    channels = 2 if element == 1 else 1
    if element not in (0, 1) or channels != cfg.channels:
        raise AlacDecodeError(f"ALAC element type {element} for {cfg.channels} channels")
    if unused:
        raise AlacDecodeError("ALAC header: unused bits not zero")
    frames = bits.read(32) if has_size else cfg.frame_length
    if frames == 0 or frames > cfg.frame_length:
        raise AlacDecodeError(f"ALAC frame of {frames} frames (max {cfg.frame_length})")
    depth = cfg.bit_depth
    if escape:
        if shift_bytes:
            raise AlacDecodeError("escape frame with shifted bytes")
        outs = [[0] * frames for _ in range(channels)]
        for i in range(frames):
            for ch in range(channels):
                outs[ch][i] = bits.signed(depth)
    else:
        outs = _decode_compressed(bits, cfg, frames, channels, shift_bytes)
    if bits.read(3) != 7:
        raise AlacDecodeError("ALAC frame lacks the END tag")
    if bits.remaining >= 8 or bits.read(bits.remaining) != 0:
        raise AlacDecodeError("ALAC frame has trailing bytes or non-zero padding")
    interleaved = [0] * (frames * channels)
    for ch in range(channels):
        interleaved[ch::channels] = outs[ch]
    if depth == 16:
        samples = array("h", interleaved)  # values are sign-extended to 16 bits already
        if sys.byteorder == "big":
            samples.byteswap()
        return samples.tobytes()
    width = depth // 8
    mask = (1 << depth) - 1
    return b"".join((value & mask).to_bytes(width, "little") for value in interleaved)


def _decode_compressed(
    bits: _Bits, cfg: AlacConfig, frames: int, channels: int, shift_bytes: int
) -> list[list[int]]:
    chan_bits = cfg.bit_depth - 8 * shift_bytes + channels - 1
    if chan_bits > 32 or shift_bytes * 8 >= cfg.bit_depth:
        raise AlacDecodeError(f"ALAC shift of {shift_bytes} bytes at {cfg.bit_depth} bits")
    mix_bits, mix_res = bits.read(8), bits.signed(8)
    heads = []
    for _ in range(channels):
        mode, den_shift, pb_factor, order = bits.read(4), bits.read(4), bits.read(3), bits.read(5)
        if mode != 0:
            raise AlacDecodeError(f"prediction mode {mode} (only mode 0 is universal)")
        coefs = [bits.signed(16) for _ in range(order)]
        heads.append((den_shift, pb_factor, coefs))
    low_bits = 8 * shift_bytes
    lows = [[0] * frames for _ in range(channels)]
    if low_bits:
        for i in range(frames):
            for ch in range(channels):
                lows[ch][i] = bits.read(low_bits)
    mixed = []
    for den_shift, pb_factor, coefs in heads:
        err = _read_residuals(bits, frames, chan_bits, cfg, cfg.pb * pb_factor // 4)
        mixed.append(_unpredict(err, coefs, den_shift, chan_bits))
    if channels == 2 and mix_res:
        u, v = mixed
        left = [a + b - ((mix_res * b) >> mix_bits) for a, b in zip(u, v, strict=True)]
        mixed = [left, [a - b for a, b in zip(left, v, strict=True)]]
    depth = cfg.bit_depth
    if not low_bits:
        half, wrap = 1 << (depth - 1), 1 << depth
        return [[(s + half) % wrap - half for s in chan] for chan in mixed]
    return [
        [_sign_extend((s << low_bits) | lo, depth) for s, lo in zip(chan, low, strict=True)]
        for chan, low in zip(mixed, lows, strict=True)
    ]
