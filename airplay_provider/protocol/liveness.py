"""When is a receiver surely gone? The rule, pure (times are passed in, nothing is read).

Signs a streamer sees while it streams:
- the receiver closed or reset the RTSP connection between requests: a receiver never does
  that while it plays, so this alone is enough;
- ICMP "port unreachable" for the audio we send (a refused send or receive on the audio
  socket): one alone is not enough (a stray error right after the start, or while a receiver
  restarts its stream after its own FLUSH), so it takes `PORT_REFUSALS` of them within
  `PORT_WINDOW_S`, outside the `GRACE_S` after a start or resume.
"""

from __future__ import annotations

from collections import deque
from typing import Final

PORT_REFUSALS: Final = 2
PORT_WINDOW_S: Final = 0.5
GRACE_S: Final = 0.5

RTSP_CLOSED: Final = "receiver gone: it closed the RTSP connection"
RTSP_RESET: Final = "receiver gone: it reset the RTSP connection"
PORT_CLOSED: Final = "receiver gone: its audio port is closed (ICMP port unreachable)"


class ReceiverWatch:
    """Collects the signs; each method returns the verdict (a message) once the receiver is
    surely gone, None while it may still be there."""

    def __init__(
        self,
        *,
        refusals: int = PORT_REFUSALS,
        window_s: float = PORT_WINDOW_S,
        grace_s: float = GRACE_S,
    ) -> None:
        if refusals < 1 or window_s <= 0 or grace_s < 0:
            raise ValueError("refusals ≥ 1, window > 0, grace ≥ 0")
        self.refusals = refusals
        self.window_s = window_s
        self.grace_s = grace_s
        self._quiet_until = float("-inf")
        self._seen: deque[float] = deque()

    def restarted(self, now: float) -> None:
        """Audio (re)starts at `now` (start, resume): forget refusals, ignore them a while."""
        self._quiet_until = now + self.grace_s
        self._seen.clear()

    def rtsp_lost(self, *, reset: bool) -> str:
        """The RTSP connection was closed (FIN) or reset (RST) while no request was running."""
        return RTSP_RESET if reset else RTSP_CLOSED

    def port_refused(self, now: float) -> str | None:
        """One ICMP port unreachable at `now`."""
        if now < self._quiet_until:
            return None
        seen = self._seen
        seen.append(now)
        while seen and now - seen[0] > self.window_s:
            seen.popleft()
        if len(seen) >= self.refusals:
            return PORT_CLOSED
        return None
