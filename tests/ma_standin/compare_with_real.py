"""Compare the stand-in's signatures with the real Music Assistant server's.

Run with the Python that has the real `music_assistant` installed (never in CI):

    python tests/ma_standin/compare_with_real.py

Every public (and `_on_*` / `_attr_*`) member the stand-in declares must exist in the real class
with the same parameters (names, kinds, defaults) and the same @final marking; `_attr_*` fields
must be declared by the real `Player`. Prints one line per difference; exit code 1 if any.
"""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLASSES = [
    ("models.provider", "Provider"),
    ("models.player_provider", "PlayerProvider"),
    ("models.player", "Player"),
    ("controllers.cache", "CacheController"),
    ("controllers.config", "ConfigController"),
    ("controllers.players.controller", "PlayerController"),
    ("controllers.streams.streams_controller", "StreamsController"),
    ("mass", "MusicAssistant"),
]
#: Stand-in helpers that are not part of Music Assistant.
OWN_HELPERS = {"add_provider", "wait_tasks", "calls", "state_updates", "requests", "sources"}


def signature(value: Any) -> list[tuple[str, str, str]] | None:
    """Parameters of a function, or None for properties and plain values."""
    value = getattr(value, "__func__", value)
    if isinstance(value, property) or not callable(value):
        return None
    params = inspect.signature(value).parameters.values()
    return [(p.name, str(p.kind), repr(p.default)) for p in params]


def is_property(value: Any) -> bool:
    """A property or a cached property (the server uses propcache's)."""
    return isinstance(value, property) or "cached_property" in type(value).__name__


def is_final(value: Any) -> bool:
    """True for members marked with typing.final (also on a property's getter)."""
    target = value.fget if isinstance(value, property) else value
    target = getattr(target, "func", getattr(target, "wrapped", target))
    return bool(getattr(target, "__final__", False))


def describe(cls: type) -> dict[str, dict[str, Any]]:
    """Members of a class worth comparing: signature, @final, kind."""
    out: dict[str, dict[str, Any]] = {}
    annotations = getattr(cls, "__annotations__", {})
    for name in [*vars(cls), *annotations]:
        if name.startswith("__") or name in OWN_HELPERS or name in out:
            continue
        if name.startswith("_") and not name.startswith(("_on_", "_attr_", "_set_", "_update_")):
            continue
        if name.startswith("_attr_") or (name in annotations and name not in vars(cls)):
            out[name] = {"kind": "field"}  # declared: compared by presence
            continue
        value = inspect.getattr_static(cls, name)
        if isinstance(value, types.MemberDescriptorType):
            continue  # the stand-in's __slots__ (instance attributes)
        out[name] = {
            "kind": "property" if is_property(value) else "member",
            "signature": signature(value),
            "final": is_final(value),
        }
    return out


def dump(package_root: str | None) -> dict[str, dict[str, dict[str, Any]]]:
    """Describe every compared class of the `music_assistant` found first on sys.path."""
    if package_root is not None:
        sys.path.insert(0, package_root)
    result = {}
    for relative, class_name in CLASSES:
        module = importlib.import_module(f"music_assistant.{relative}")
        result[f"{relative}.{class_name}"] = describe(getattr(module, class_name))
    return result


def main() -> int:
    """Describe the stand-in (in a child process) and the real server; print differences."""
    if len(sys.argv) > 1 and sys.argv[1] == "--dump-standin":
        print(json.dumps(dump(str(HERE))))
        return 0
    while str(HERE) in sys.path:  # the script's folder: the stand-in would shadow the server
        sys.path.remove(str(HERE))
    child = subprocess.run(
        [sys.executable, __file__, "--dump-standin"],
        capture_output=True,
        text=True,
        check=True,
    )
    standin = json.loads(child.stdout)
    real = json.loads(json.dumps(dump(None)))  # same shapes as the child's JSON
    problems: list[str] = []
    for class_key, members in standin.items():
        for name, mine in members.items():
            where = f"{class_key}.{name}"
            theirs = real[class_key].get(name)
            if theirs is None and mine["kind"] == "field":
                problems.append(f"{where}: not declared by the real class")
            elif theirs is None:
                problems.append(f"{where}: missing in the real server")
            elif mine != theirs and mine["kind"] != "field":
                problems.append(f"{where}: stand-in {mine} != real {theirs}")
    for line in problems:
        print(line)
    print(f"{len(standin)} classes compared, {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
