"""Every error class of the package derives from `AirplayError` (one root to catch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Exception classes that are deliberately not errors, with the reason.
NOT_ERRORS = {
    # A control-flow signal (BaseException so that `except Exception` never swallows it).
    "airplay_provider.host.cli._EarlyStop",
}

# Run in a fresh interpreter: importing every module (the adapter with the Music Assistant
# stand-in on the path) must not leak into the other tests' process.
SCAN = """
import importlib, inspect, json, pkgutil, sys
import airplay_provider
from airplay_provider.protocol.errors import AirplayError
found = {}
for info in pkgutil.walk_packages(airplay_provider.__path__, "airplay_provider."):
    if info.name.endswith("__main__"):
        continue
    module = importlib.import_module(info.name)
    for name, obj in vars(module).items():
        if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name:
            found[f"{info.name}.{name}"] = issubclass(obj, AirplayError)
print(json.dumps(found))
"""


def scan() -> dict[str, bool]:
    """Every exception class defined in the package → whether it derives from AirplayError."""
    env_path = f"{ROOT}:{ROOT / 'tests' / 'ma_standin'}"
    out = subprocess.run(
        [sys.executable, "-c", SCAN],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": env_path},
    )
    found: dict[str, bool] = json.loads(out.stdout)
    return found


def test_every_error_class_derives_from_the_one_root() -> None:
    found = scan()
    # The scan sees real classes across the package, including deep leaves.
    assert found["airplay_provider.protocol.hap.errors.BackoffError"] is True
    assert found["airplay_provider.streamer.rtsp_client.RtspClientError"] is True
    assert set(NOT_ERRORS) <= set(found)
    assert len(found) > 40
    outside = sorted(name for name, ok in found.items() if not ok and name not in NOT_ERRORS)
    assert outside == [], f"not derived from AirplayError: {outside}"
    assert not any(found[name] for name in NOT_ERRORS)


def test_value_errors_stay_value_errors() -> None:
    """Adding the root kept the standard bases callers catch."""
    from airplay_provider.config import ConfigValidationError  # noqa: PLC0415
    from airplay_provider.protocol.errors import AirplayError  # noqa: PLC0415
    from airplay_provider.protocol.rtp import RtpError  # noqa: PLC0415

    for cls in (ConfigValidationError, RtpError):
        assert issubclass(cls, ValueError)
        assert issubclass(cls, AirplayError)
