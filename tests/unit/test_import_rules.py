"""Who may import whom (docs/ARCHITECTURE.md §2), checked on the source of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "airplay_provider"
#: Modules both the streamers and the provider side use (transport, no provider logic).
SHARED = {"airplay_provider.rtsp_connection", "airplay_provider.pairing.client"}
#: Feature packages of the provider side: `provider.py` composes them, they never import each
#: other, the provider or a host.
FEATURES = ("session", "remote", "pairing")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of everything a module imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                prefix = here[: len(here) - node.level + 1]
                base = ".".join([*prefix, base] if base else prefix)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def modules_under(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def ours(names: set[str]) -> set[str]:
    return {n for n in names if n == "airplay_provider" or n.startswith("airplay_provider.")}


@pytest.mark.parametrize("path", modules_under("protocol"), ids=lambda p: p.name)
def test_protocol_imports_nothing_of_ours_outside_protocol(path: Path) -> None:
    outside = {n for n in ours(imports_of(path)) if not n.startswith("airplay_provider.protocol")}
    assert outside == set(), f"{module_name(path)} is sans-I/O and imports {outside}"


@pytest.mark.parametrize("path", modules_under("streamer"), ids=lambda p: p.name)
def test_streamers_never_import_the_provider_side(path: Path) -> None:
    allowed = ("airplay_provider.protocol", "airplay_provider.streamer")
    outside = {
        n
        for n in ours(imports_of(path))
        if not n.startswith(allowed) and not any(n.startswith(s) for s in SHARED)
    }
    assert outside == set(), f"{module_name(path)} imports the provider side: {outside}"


def _shared_files() -> list[Path]:
    """The shared modules and the package `__init__` files importing one of them runs."""
    files = []
    for name in sorted(SHARED):
        parts = name.split(".")[1:]
        files.append(PACKAGE.joinpath(*parts).with_suffix(".py"))
        files.extend(PACKAGE.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts)))
    return files


@pytest.mark.parametrize("path", _shared_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_shared_modules_import_only_the_protocol_and_each_other(path: Path) -> None:
    """What a streamer loads through a shared module stays free of the provider side."""
    outside = {
        n
        for n in ours(imports_of(path))
        if not n.startswith("airplay_provider.protocol")
        and not any(n.startswith(s) for s in SHARED)
    }
    assert outside == set(), f"{module_name(path)} is shared and imports {outside}"


@pytest.mark.parametrize(
    "path",
    [p for feature in FEATURES for p in modules_under(feature)],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_feature_packages_never_import_each_other_or_the_provider(path: Path) -> None:
    here = path.relative_to(PACKAGE).parts[0]
    forbidden = [f"airplay_provider.{f}" for f in FEATURES if f != here]
    forbidden += ["airplay_provider.provider", "airplay_provider.host", "airplay_provider.mass"]
    names = ours(imports_of(path)) - SHARED
    crossing = {n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden)}
    crossing -= {n for n in crossing if any(n.startswith(s + ".") for s in SHARED)}
    assert crossing == set(), f"{module_name(path)} imports {crossing}"


def _outside_the_adapter(path: Path) -> bool:
    # The package's own __init__ is Music Assistant's entry point: its setup() looks for the
    # server's class (lazily, inside the function) to hand over to the adapter.
    relative = path.relative_to(PACKAGE)
    return "mass" not in relative.parts and relative != Path("__init__.py")


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(PACKAGE.rglob("*.py")) if _outside_the_adapter(p)],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_only_the_adapter_imports_music_assistant_and_the_core_never_the_cli(path: Path) -> None:
    names = imports_of(path)
    assert not {n for n in names if n.split(".")[0] == "music_assistant"}
    if "host" not in path.relative_to(PACKAGE).parts:
        cli = {n for n in names if n.split(".")[:2] == ["airplay_provider", "host"]}
        assert cli == set(), module_name(path)


def test_the_rules_see_real_imports() -> None:
    """The scanner itself: a module known to import across packages is seen doing so."""
    names = imports_of(PACKAGE / "session" / "group.py")
    assert any(n.startswith("airplay_provider.session.processes") for n in names)
