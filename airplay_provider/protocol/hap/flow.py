"""A request/response state machine driven by any transport (generator based)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator
from typing import Generic, TypeVar

from .errors import ProtocolViolation

ResultT = TypeVar("ResultT")

Steps = Generator[bytes, bytes, ResultT]
"""Yields each request body, receives the matching response body, returns the result."""


class PairingFlow(ABC, Generic[ResultT]):
    """Drive with ``body = start()`` then ``body = handle(reply)`` until it returns None."""

    path: str = ""
    """The request URI every body of this flow is posted to."""

    def __init__(self) -> None:
        self._steps: Steps[ResultT] | None = None
        self._result: ResultT | None = None
        self._finished = False
        self._failed = False

    @abstractmethod
    def _run(self) -> Steps[ResultT]:
        """The flow itself: yield request bodies, receive replies, return the result."""

    def start(self) -> bytes:
        """The first request body."""
        if self._steps is not None:
            raise ProtocolViolation("flow already started")
        self._steps = self._run()
        body = self._advance(None)
        if body is None:
            raise ProtocolViolation("flow ended before its first request")
        return body

    def handle(self, reply: bytes) -> bytes | None:
        """Feed the reply to the last request; returns the next body or None when done."""
        if self._steps is None or self._finished or self._failed:
            raise ProtocolViolation("flow is not waiting for a reply")
        return self._advance(reply)

    def _advance(self, reply: bytes | None) -> bytes | None:
        assert self._steps is not None
        try:
            if reply is None:
                return next(self._steps)
            return self._steps.send(reply)
        except StopIteration as stop:
            self._finished = True
            self._result = stop.value
            return None
        except BaseException:
            self._failed = True
            raise

    @property
    def done(self) -> bool:
        """True once the last reply was accepted."""
        return self._finished

    @property
    def result(self) -> ResultT:
        """The outcome; only available when ``done``."""
        if not self._finished or self._result is None:
            raise ProtocolViolation("flow has not completed")
        return self._result
