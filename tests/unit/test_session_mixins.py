"""`StreamSession` is built from mixins that declare (as `raise NotImplementedError` stubs) the
methods they call on each other. The order of the bases must let the real definitions win:
no name of the session may resolve to such a stub."""

from __future__ import annotations

import inspect

from airplay_provider.session.group import StreamSession


def _is_stub(member: object) -> bool:
    function = getattr(member, "fget", None) or member
    try:
        source = inspect.getsource(function)  # type: ignore[arg-type]
    except (TypeError, OSError):
        return False
    body = [
        line.strip()
        for line in source.splitlines()[1:]
        if line.strip() and not line.strip().startswith(('"""', "#", "@"))
    ]
    return bool(body) and body[-1] == "raise NotImplementedError" and len(body) <= 2


def test_no_session_method_resolves_to_a_mixin_stub() -> None:
    stubs = []
    for name in dir(StreamSession):
        owner = next(c for c in StreamSession.__mro__ if name in c.__dict__)
        if _is_stub(owner.__dict__[name]):
            stubs.append(f"{name} (from {owner.__name__})")
    assert stubs == []


def test_the_check_sees_a_stub() -> None:
    class Declares:
        async def _release(self) -> None:
            raise NotImplementedError

    assert _is_stub(Declares.__dict__["_release"])
