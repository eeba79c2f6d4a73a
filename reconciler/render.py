"""The one render path: mesh model → proxy views → each proxy's Envoy resources.

The server (`reconciler.reconcile.Engine`), `plan`, `reconcile --out` and `inspect` all call
`render`, so what a dry run shows is what the server would publish. The caller builds the
model (the server adds the dataplanes registered over xDS) and may hand in the policy indexes
it already computed; `previous` (the views last published) lets the server regenerate only
proxies whose inputs changed.

Exceptions pass through as they are, unless `on_bug` is given: then one escaping a stage (other
than a CA that cannot be used while building the views) is replaced by `on_bug(exception, what
was being done)`, which lets the server turn it into the commit's one-line rejection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, MutableMapping
from dataclasses import dataclass

from reconciler.ca.authority import CaError
from reconciler.ca.provider import CertificateProvider
from reconciler.mesh.model import MeshModel
from reconciler.policies.core.match import PolicyIndex
from reconciler.views.proxy import ProxyView, policy_indexes, proxy_views
from reconciler.views.reuse import Reuse
from reconciler.views.same import SameViews
from reconciler.xds.generate import generate
from reconciler.xds.resources import ProxyResources

__all__ = ["Rendering", "render", "BugReporter"]

BugReporter = Callable[[Exception, str], Exception]
"""(the exception, what was being done) → the exception to raise instead."""


@dataclass(frozen=True, slots=True)
class Rendering:
    views: dict[str, ProxyView]
    """Every rendered proxy's view, by node id."""
    resources: dict[str, ProxyResources]
    """The Envoy config of each proxy whose view differs from `previous` (all without it)."""
    indexes: Mapping[str, PolicyIndex]
    """Each mesh's policies, indexed once: callers reuse them (allowed clients, inspect)."""


def render(
    model: MeshModel,
    certs: CertificateProvider | None = None,
    compact_outbounds: int | None = None,
    *,
    indexes: Mapping[str, PolicyIndex] | None = None,
    only: Collection[str] | None = None,
    previous: Mapping[str, ProxyView] | None = None,
    reuse: Reuse | None = None,
    generate_config: bool = True,
    on_bug: BugReporter | None = None,
    timings: MutableMapping[str, float] | None = None,
) -> Rendering:
    """Views and Envoy config of every proxy of `model` (or of the node ids in `only`).

    Certificates come from `certs` (a throwaway in-memory CA when None); `compact_outbounds` is
    serve's --compact-outbounds. Without `generate_config`, only the views are computed.
    `reuse` (the server's) keeps the views whose inputs did not change since its last render.
    `timings`, when given, gets the seconds spent on the views added to "build" and on the
    Envoy config as "generate" (the server's phase metrics).
    Raises CaError when a mesh's CA cannot be used.
    """
    started = time.perf_counter()
    try:
        indexes = indexes if indexes is not None else policy_indexes(model)
        views = proxy_views(model, certs, compact_outbounds, indexes, only, reuse)
    except CaError:
        raise
    except Exception as e:
        if on_bug is None:
            raise
        raise on_bug(e, "building the mesh model") from e
    viewed = time.perf_counter()
    resources: dict[str, ProxyResources] = {}
    if generate_config:
        same = SameViews()
        for node, view in views.items():
            if previous is not None and same.same(previous.get(node), view):
                continue
            try:
                resources[node] = generate(view)
            except Exception as e:
                if on_bug is None:
                    raise
                raise on_bug(e, f"generating the Envoy config of {node}") from e
    if timings is not None:
        timings["build"] = timings.get("build", 0.0) + viewed - started
        timings["generate"] = time.perf_counter() - viewed
    return Rendering(views, resources, indexes)
