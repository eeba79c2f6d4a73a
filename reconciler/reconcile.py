"""From a commit to per-proxy Envoy config: load → validate → build the mesh → generate.

`Engine` is the CPU-heavy half of the reconcile loop, free of sockets and clocks: it runs in a
worker thread, one call at a time, and remembers each proxy's last ProxyView so that only
proxies whose inputs changed are regenerated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.ca.provider import CertificateProvider
from reconciler.mesh.model import MeshModel, build_mesh_model
from reconciler.mesh.proxy import ProxyView, proxy_views
from reconciler.model import Resource, Snapshot
from reconciler.source.git import GitSource
from reconciler.validate import Report, ResourceValidator, validate
from reconciler.xds.generate import generate
from reconciler.xds.resources import ProxyResources

__all__ = ["Engine", "Evaluation", "Build"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Evaluation:
    revision: str
    snapshot: Snapshot
    report: Report


@dataclass(frozen=True, slots=True)
class Build:
    model: MeshModel
    views: dict[str, ProxyView]
    changed: dict[str, ProxyResources]
    """Proxies whose config must be (re)published."""
    removed: frozenset[str]
    """Proxies that no longer exist."""


class Engine:
    def __init__(self, source: GitSource, certs: CertificateProvider | None = None) -> None:
        self.source = source
        self.validator = ResourceValidator()
        self.certs = certs or CertificateProvider()
        self._views: dict[str, ProxyView] = {}

    def evaluate(self, revision: str) -> Evaluation:
        """Read and validate one commit (parses only blobs not seen before)."""
        commit = self.source.resolve(revision)
        snapshot = self.source.snapshot_of(commit)
        return Evaluation(str(commit.id), snapshot, validate(snapshot, self.validator))

    def build(self, snapshot: Snapshot, registered: Iterable[Resource]) -> Build:
        """The mesh model and the config of every proxy whose inputs changed.

        Raises CaError when a mesh's CA cannot be used (a provided CA that does not load).
        """
        model = build_mesh_model(snapshot.resources, registered)
        views = proxy_views(model, self.certs)
        self.certs.forget_except({(v.dataplane.mesh, v.dataplane.name) for v in views.values()})
        changed = {node: generate(view) for node, view in views.items() if self._views.get(node) != view}
        removed = frozenset(self._views.keys() - views.keys())
        return Build(model, views, changed, removed)

    def commit(self, build: Build) -> None:
        """Remember what was published, so the next build can skip unchanged proxies."""
        self._views = build.views

    def forget(self) -> None:
        self._views = {}
