"""Strict by default: one error log per emulated receiver, checked when the emulator closes.

Every refusal and every protocol violation an emulator sees is recorded in its `ErrorLog`
(RTSP side and UDP side alike). Leaving the emulator's ``async with`` block normally fails the
test with `EmulatorViolation` if the log holds an error the test did not declare with
``expect_errors=`` or ``emulator.expect_error(...)``; a test that fails for another reason
keeps its own failure. Declared patterns are regular expressions searched in the messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


class EmulatorViolation(AssertionError):
    """An emulated receiver recorded errors the test did not declare."""


class ErrorLog(list[str]):
    """The messages of every refusal and violation, in order (a list, so tests read it as one).

    `unique`: a message already in the log is not added again (the RAOP emulator's habit).
    """

    def __init__(self, expect: Iterable[str] = (), *, unique: bool = False) -> None:
        super().__init__()
        self.unique = unique
        self.expected: list[re.Pattern[str]] = []
        self.expect(*expect)

    def record(self, message: str) -> None:
        """Add one error message."""
        if not (self.unique and message in self):
            self.append(message)

    def expect(self, *patterns: str) -> None:
        """Declare errors this test provokes on purpose (regular expressions, searched)."""
        self.expected.extend(re.compile(pattern) for pattern in patterns)

    def unexpected(self) -> list[str]:
        """The recorded errors no declared pattern matches."""
        return [m for m in self if not any(p.search(m) for p in self.expected)]

    def check(self, who: str) -> None:
        """Raise `EmulatorViolation` if an undeclared error was recorded."""
        unexpected = self.unexpected()
        if unexpected:
            raise EmulatorViolation(f"{who} recorded unexpected errors: {unexpected}")
