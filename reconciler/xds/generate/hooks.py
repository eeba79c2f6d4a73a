"""Running the policy plugins' hooks on a message being generated."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.policies.core.plugin import HookContext
from reconciler.policies.plugins import plugins

__all__ = ["apply_hooks", "HookContext"]


def apply_hooks(hook: str, message: Any, confs: Mapping[str, Mapping[str, Any]], ctx: HookContext) -> None:
    """Give `message` to the `hook` of every plugin that has a conf for it, in plugin order."""
    if not confs:
        return
    for plugin in plugins():
        fn = getattr(plugin, hook)
        conf = confs.get(plugin.kind)
        if fn is not None and conf is not None:
            fn(message, conf, ctx)
