"""Strictness helpers for the stand-in base classes (not part of Music Assistant)."""

from __future__ import annotations

import inspect
from typing import Any


def final_names(cls: type) -> set[str]:
    """Members of `cls` marked with typing.final (`__final__` on the function or getter)."""
    names = set()
    for name, value in vars(cls).items():
        target = value.fget if isinstance(value, property) else value
        target = getattr(target, "func", target)  # cached_property-like wrappers
        if getattr(target, "__final__", False):
            names.add(name)
    return names


def _params(value: Any) -> list[tuple[str, Any, Any]] | None:
    if isinstance(value, property):
        return None
    func = getattr(value, "__func__", value)
    if not callable(func):
        return None
    sig = inspect.signature(func)
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def check_overrides(base: type, sub: type) -> None:
    """Raise TypeError when `sub` overrides a final member of `base` or changes a signature."""
    finals = final_names(base)
    for name, value in vars(sub).items():
        if name.startswith("__") or not hasattr(base, name):
            continue
        if name in finals:
            raise TypeError(f"{sub.__name__}.{name} overrides a @final member of {base.__name__}")
        base_value = inspect.getattr_static(base, name)
        if isinstance(base_value, property) != isinstance(value, property):
            raise TypeError(f"{sub.__name__}.{name}: property/method mismatch with the base")
        mine, theirs = _params(value), _params(base_value)
        if mine is not None and theirs is not None and mine != theirs:
            raise TypeError(f"{sub.__name__}.{name}{mine} does not match {base.__name__}{theirs}")
