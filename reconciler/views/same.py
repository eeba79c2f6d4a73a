"""Whether a proxy's new view equals the one last published, without comparing shared parts twice.

Views share their parts: every proxy calling svc-0 holds the same OutboundView object (and in it
the same Service with all of svc-0's endpoints), and every proxy of a mesh the same MeshInfo.
Comparing each view with `==` walks those shared parts once per proxy: at 10,000 proxies with 10
outbounds each, a commit that changes nothing spent 21 s comparing the same endpoints again and
again. `SameViews` compares each pair of (old, new) parts once and remembers the answer.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from reconciler.views.proxy import ProxyView

__all__ = ["SameViews"]

_SHARED = frozenset({"mesh", "outbounds", "gateway"})
"""ProxyView fields whose values (or items) are shared between proxies."""
_FIELDS = tuple(f.name for f in fields(ProxyView))


class SameViews:
    """`same(old, new)` is `old == new`, with each pair of shared parts compared once.

    Holds the parts it compared (their ids key the answers), so use one per render.
    """

    def __init__(self) -> None:
        self._answers: dict[tuple[int, int], bool] = {}
        self._held: list[tuple[object, object]] = []

    def same(self, old: ProxyView | None, new: ProxyView) -> bool:
        if old is None:
            return False
        if old is new:
            return True
        for name in _FIELDS:
            a, b = getattr(old, name), getattr(new, name)
            if name == "outbounds":
                if len(a) != len(b) or not all(self._equal(x, y) for x, y in zip(a, b, strict=True)):
                    return False
            elif name in _SHARED:
                if not self._equal(a, b):
                    return False
            elif a != b:
                return False
        return True

    def _equal(self, a: Any, b: Any) -> bool:
        if a is b:
            return True
        key = (id(a), id(b))
        answer = self._answers.get(key)
        if answer is None:
            answer = self._answers[key] = bool(a == b)
            self._held.append((a, b))  # the ids stay theirs while the answer is kept
        return answer
