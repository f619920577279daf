"""The root of every error this package raises (pure, imports nothing)."""

from __future__ import annotations


class AirplayError(Exception):
    """Base of every error of airplay_provider: ``except AirplayError`` catches all of ours.

    Leaves keep their own standard base as well (``ValueError`` for bad input, ``RuntimeError``
    for the receiver lab), so existing ``except ValueError`` sites still catch them.
    """
