"""Running the policy plugins' hooks on a message being generated."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.policies.core.plugin import HookContext, ProxyFacts
from reconciler.policies.plugins import plugins

__all__ = ["apply_hooks", "HookContext", "ProxyFacts", "proxy_for"]


def proxy_for(confs: Mapping[str, Mapping[str, Any]], facts: ProxyFacts | None) -> ProxyFacts | None:
    """`facts` when a `per_proxy` kind has a conf here, else None: a piece built without the
    proxy's facts is shared by every proxy alike (the generator's caches key on the context)."""
    if facts is None or not confs:
        return None
    return facts if any(p.kind in confs and p.needs_proxy(confs[p.kind]) for p in plugins()) else None


def apply_hooks(hook: str, message: Any, confs: Mapping[str, Mapping[str, Any]], ctx: HookContext) -> None:
    """Give `message` to the `hook` of every plugin that has a conf for it, in plugin order."""
    if not confs:
        return
    for plugin in plugins():
        fn = getattr(plugin, hook)
        conf = confs.get(plugin.kind)
        if fn is not None and conf is not None:
            fn(message, conf, ctx)
