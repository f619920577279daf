"""Adapter tests: the Music Assistant stand-in (tests/ma_standin) goes on sys.path here only."""

from __future__ import annotations

import sys
from pathlib import Path

STANDIN = Path(__file__).resolve().parents[1] / "ma_standin"
if str(STANDIN) not in sys.path:
    sys.path.insert(0, str(STANDIN))
