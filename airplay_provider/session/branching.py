"""The branch part of `StreamSession` (a mixin): members at another format than the group's.

A group at 24-bit/48 kHz with 16-bit/44.1 kHz members feeds them through one `FormatBranch`
per format (one resampler each, whatever the number of such members). The session's frames,
ring buffer and pacing stay at the group's rate; each branch has its own frames, ring buffer
(late join) and members, on the same timeline in seconds: branch frame b at ``T + b/rate``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Final

from airplay_provider.session.branch import FormatBranch, branch_frame, step_frames
from airplay_provider.session.member import SessionMember
from airplay_provider.session.pcm_format import (
    CD_FORMAT,
    FORMAT_NOTE,
    PcmFormat,
    format_note,
    member_format,
    target_format,
    target_in_format,
)
from airplay_provider.session.processes import StreamTarget
from airplay_provider.session.timeline import RingBuffer

BRANCH_RING_S: Final = 10.0
#: Audio a branch's resampler may keep until more input comes (its input packet, ~21 ms).
BRANCH_HOLDBACK_S: Final = 0.05


class SessionBranches:
    """Format branches of a session (its state lives in the session)."""

    pcm_format: PcmFormat
    members: dict[str, SessionMember]
    ring: RingBuffer
    fed: int
    logger: logging.Logger
    branches: dict[PcmFormat, FormatBranch]
    format_notes: dict[str, str]

    def _formatted(self, target: StreamTarget) -> StreamTarget:
        """`target` set to the format it plays in this group (and its note said once)."""
        note = format_note(self.pcm_format, target)
        if note is not None and target.key not in self.format_notes:
            self.format_notes[target.key] = note
            self.logger.warning("%s %s", target.name, note, extra={FORMAT_NOTE: True})
        wanted = member_format(self.pcm_format, target)
        if target_format(target) == wanted:
            return target
        return target_in_format(target, wanted)

    def _without_hires(self, target: StreamTarget, reason: str) -> StreamTarget:
        """`target` again at 16-bit/44.1 kHz after its receiver refused hi-res (said once)."""
        note = f"plays {CD_FORMAT}, not hi-res: the receiver refused {self.pcm_format} ({reason})"
        self.format_notes[target.key] = note
        self.logger.warning("%s %s", target.name, note, extra={FORMAT_NOTE: True})
        return target_in_format(replace(target, hires=False), CD_FORMAT)

    def _branch_of(self, member: SessionMember) -> FormatBranch | None:
        """The branch that feeds `member` (None: the group's own audio does)."""
        pcm_format = target_format(member.target)
        return None if pcm_format == self.pcm_format else self.branches.get(pcm_format)

    def _ring_and_fed(self, pcm_format: PcmFormat) -> tuple[RingBuffer, int]:
        """Ring buffer and frames fed so far, in `pcm_format` (the group's, or a branch's)."""
        branch = self.branches.get(pcm_format)
        if pcm_format == self.pcm_format or branch is None:
            return self.ring, self.fed
        return branch.ring, branch.fed

    async def _open_branch(self, pcm_format: PcmFormat, first_frame: int) -> FormatBranch:
        """The branch of `pcm_format`, started at session frame `first_frame` (a multiple of
        the rates' step) when it does not exist yet, fed the ring buffer from there."""
        branch = self.branches.get(pcm_format)
        if branch is not None:
            return branch
        branch = FormatBranch(
            pcm_format,
            self.pcm_format,
            first_frame=branch_frame(first_frame, self.pcm_format.rate, pcm_format.rate),
            ring_seconds=BRANCH_RING_S,
            deliver=self._deliver_branch,
            logger=self.logger,
        )
        await branch.start()
        self.branches[pcm_format] = branch
        if first_frame < self.fed:
            for chunk in self.ring.since(first_frame):
                branch.write(chunk)
        return branch

    def _branch_start_frame(self, wanted: int) -> int:
        """A session frame at or before `wanted` where a branch can start (a multiple of the
        step, inside the ring buffer)."""
        step, _ = step_frames(self.pcm_format.rate, CD_FORMAT.rate)
        frame = wanted - wanted % step
        if frame < self.ring.start:
            frame += step
        return frame

    def _deliver_branch(self, branch: FormatBranch, pcm: bytes | None) -> None:
        for member in self.members.values():
            if self._branch_of(member) is branch:
                member.feed(pcm)

    def _feed_branches(self, pcm: bytes | None) -> None:
        """The group's PCM (None: its end) to every branch."""
        for branch in self.branches.values():
            branch.write(pcm)

    def _branches_caught_up(self) -> bool:
        """Whether every branch put out what the group fed it (but for what its resampler keeps
        until more comes): before T, a branch's members hold the audio the others hold."""
        for branch in self.branches.values():
            due = self.fed * branch.rate // self.pcm_format.rate
            kept = due - branch.fed
            if kept > round(BRANCH_HOLDBACK_S * branch.rate) and not branch.ended.is_set():
                return False
        return True

    async def _stop_branches(self) -> None:
        for branch in list(self.branches.values()):
            await branch.stop()
