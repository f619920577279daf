"""Non-blocking PCM input from a file descriptor (stdin), indexed by sample number.

The buffer always starts at input sample `first_sample`. Bytes for samples the streamer has
already given up on (too late to play, or replaced by silence after an underrun) are dropped on
arrival, so the mapping "input sample k plays at T + k/rate" never slips. A sample is one
stereo frame: 4 bytes of s16le, or 6 of packed s24le (`bytes_per_frame`); a frame torn across
reads is carried to the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Callable

S16_STEREO_BYTES = 4  # the default frame: s16le stereo


class PcmInput:
    """Reads PCM from `fd` on the event loop with a bounded buffer (backpressure);
    `max_buffer_bytes` is counted in frames (`max_buffer_frames` x `bytes_per_frame`)."""

    def __init__(
        self,
        fd: int,
        bytes_per_frame: int = S16_STEREO_BYTES,
        *,
        max_buffer_frames: int = 44100 * 4,
    ) -> None:
        self.fd = fd
        self.bytes_per_frame = bytes_per_frame
        self.max_buffer_bytes = max_buffer_frames * bytes_per_frame
        self.buffer = bytearray()
        self.first_sample = 0
        self.eof = False
        self.total_bytes = 0
        self.dropped_samples = 0
        self.changed = asyncio.Event()
        self.on_change: Callable[[], None] | None = None
        self._odd = b""  # an incomplete frame carried to the next read
        self._owed = 0  # samples skipped before they arrived: dropped on arrival
        self._reading = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._file_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin reading on the running loop."""
        self._loop = asyncio.get_running_loop()
        if stat.S_ISREG(os.fstat(self.fd).st_mode):
            # epoll refuses regular files (EPERM); they never block, so poll them from a task.
            self._file_task = self._loop.create_task(self._read_file())
            return
        os.set_blocking(self.fd, False)
        self._resume_reading()

    async def _read_file(self) -> None:
        while not self.eof:
            if len(self.buffer) < self.max_buffer_bytes:
                self._on_readable()
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(0.25)

    def _resume_reading(self) -> None:
        if self._file_task is not None:
            return
        if not self._reading and not self.eof and self._loop is not None:
            self._loop.add_reader(self.fd, self._on_readable)
            self._reading = True

    def _pause_reading(self) -> None:
        if self._reading and self._loop is not None:
            self._loop.remove_reader(self.fd)
            self._reading = False

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.eof = True
            self._pause_reading()
            if self._odd:  # a torn last frame: pad it to a whole frame
                self.buffer.extend(self._odd.ljust(self.bytes_per_frame, b"\0"))
                self._odd = b""
        else:
            self.total_bytes += len(data)
            if self._odd:
                data = self._odd + data
            whole = len(data) - len(data) % self.bytes_per_frame
            self._odd = data[whole:]
            start = 0
            if self._owed:
                start = min(self._owed, whole // self.bytes_per_frame) * self.bytes_per_frame
                self._owed -= start // self.bytes_per_frame
                self.dropped_samples += start // self.bytes_per_frame
            self.buffer.extend(memoryview(data)[start:whole])
            if len(self.buffer) >= self.max_buffer_bytes:
                self._pause_reading()
        self.changed.set()
        if self.on_change is not None:
            self.on_change()

    @property
    def available_samples(self) -> int:
        """Samples buffered from `first_sample` on."""
        return len(self.buffer) // self.bytes_per_frame

    def skip_to(self, sample: int) -> int:
        """Drop input before `sample` (also samples not yet arrived); returns samples skipped."""
        if sample <= self.first_sample:
            return 0
        count = sample - self.first_sample
        present = min(count, self.available_samples)
        del self.buffer[: present * self.bytes_per_frame]
        self.dropped_samples += present
        self._owed += count - present
        self.first_sample = sample
        return count

    def take(self, samples: int) -> bytes:
        """Remove and return up to `samples` samples from the front of the buffer."""
        count = min(samples, self.available_samples)
        chunk = bytes(self.buffer[: count * self.bytes_per_frame])
        del self.buffer[: count * self.bytes_per_frame]
        self.first_sample += count
        if len(self.buffer) < self.max_buffer_bytes // 2:
            self._resume_reading()
        return chunk

    def prepend(self, first_sample: int, pcm: bytes) -> None:
        """Put already-sent PCM back in front (resume after pause)."""
        self.buffer[:0] = pcm
        self.first_sample = first_sample

    def discard_all(self) -> int:
        """Drop everything buffered and whatever is waiting in the pipe right now (flush)."""
        dropped = self.available_samples
        self.buffer.clear()
        with contextlib.suppress(BlockingIOError, OSError):
            while True:
                data = os.read(self.fd, 65536)
                if not data:
                    self.eof = True
                    break
                dropped += len(data) // self.bytes_per_frame
        self._odd = b""
        self._owed = 0
        self._resume_reading()
        return dropped

    def close(self) -> None:
        """Stop reading."""
        self._pause_reading()
        if self._file_task is not None:
            self._file_task.cancel()
