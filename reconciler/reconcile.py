"""From a commit to per-proxy Envoy config: load → validate → build the mesh → generate.

`Engine` is the CPU-heavy half of the reconcile loop, free of sockets and clocks: it runs in a
worker thread, one call at a time, and remembers each proxy's last ProxyView so that only
proxies whose inputs changed are regenerated. The mesh model becomes Envoy config through
`reconciler.render.render`, the same path `plan`, `reconcile --out` and `inspect` take.

No commit may crash the loop: bad input becomes validation problems, and an exception that
still escapes a stage is a bug, raised as `InternalError` with a one-line description (stage,
exception, where it was raised) that the control plane records as the commit's rejection.
Only what is not about the commit passes through as it is: git and file errors (SourceError,
GitError, OSError: the read is retried) and CaError (a CA that cannot be used).
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.ca.authority import CaError
from reconciler.ca.provider import CertificateProvider
from reconciler.ca.statefiles import write_public
from reconciler.mesh.dataplanes import DataplaneCache
from reconciler.mesh.health import HealthReport, health_aware
from reconciler.mesh.model import MeshModel, build_mesh_model
from reconciler.model import Resource, Snapshot
from reconciler.render import render
from reconciler.source.git import GitError, GitSource, SourceError
from reconciler.validate import Report, ResourceValidator, validate
from reconciler.validate.bugs import describe_bug
from reconciler.views.proxy import ProxyView
from reconciler.views.reuse import Reuse
from reconciler.xds.resources import ProxyResources

__all__ = ["Engine", "Evaluation", "Build", "InternalError", "VIPS_FILE", "read_vips", "write_vips"]

log = logging.getLogger(__name__)


_READ_ERRORS = (SourceError, GitError, OSError)
"""Reading a commit failed (a missing object, a file error): not a bug, the read is retried."""


class InternalError(Exception):
    """An unexpected exception while loading, validating, building or generating: a bug.

    `message` is one line (see reconciler.validate.bugs); the original exception is the cause.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Evaluation:
    revision: str
    snapshot: Snapshot
    report: Report
    timings: dict[str, float] = field(default_factory=dict, compare=False)
    """Seconds spent in the phases `load` and `validate` (the control plane's metrics)."""


@dataclass(frozen=True, slots=True)
class Build:
    model: MeshModel
    views: dict[str, ProxyView]
    changed: dict[str, ProxyResources]
    """Proxies whose config must be (re)published."""
    removed: frozenset[str]
    """Proxies that no longer exist."""
    timings: dict[str, float] = field(default_factory=dict, compare=False)
    """Seconds spent in the phases `build` (mesh model and proxy views) and `generate` (Envoy config)."""


VIPS_FILE = "vips.json"
"""The VIP allocation `serve` keeps in its state directory (docs/networking.md)."""


def read_vips(path: Path) -> dict[tuple[str, str], str]:
    """(mesh, hostname entry) → VIP from `path`; empty when it is absent or unreadable (then the
    VIPs are derived again from the commit, as `plan` derives them: nothing is lost but stability
    across a collision, so a damaged file is reported and not fatal)."""
    try:
        doc = json.loads(path.read_text())
        return {(str(mesh), str(entry)): str(vip) for mesh, entries in doc["meshes"].items() for entry, vip in entries.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning("cannot read the VIP allocation; deriving VIPs again", extra={"path": str(path), "error": str(e)})
        return {}


def write_vips(path: Path, vips: Mapping[tuple[str, str], str]) -> None:
    meshes: dict[str, dict[str, str]] = {}
    for (mesh, entry), vip in sorted(vips.items()):
        meshes.setdefault(mesh, {})[entry] = vip
    write_public(path, (json.dumps({"version": 1, "meshes": meshes}, indent=1, sort_keys=True) + "\n").encode())


class Engine:
    def __init__(
        self,
        source: GitSource,
        certs: CertificateProvider | None = None,
        compact_outbounds: int | None = None,
        vips_file: Path | None = None,
    ) -> None:
        """`vips_file`: where the VIP allocation is kept between runs (read now, written after each
        published build); None: VIPs are derived from each commit alone, as `plan` does."""
        self.source = source
        self.compact_outbounds = compact_outbounds
        self.validator = ResourceValidator()
        self.certs = certs or CertificateProvider()
        self._views: dict[str, ProxyView] = {}
        self._reuse = Reuse()
        self._dataplanes = DataplaneCache()
        self._vips_file = vips_file
        self._vips: Mapping[tuple[str, str], str] = read_vips(vips_file) if vips_file is not None else {}
        self.health: Mapping[str, HealthReport] = {}
        """Each proxy's last health report (HDS): its unhealthy inbounds are no endpoints. The
        control plane replaces the mapping, never changes it, as a build reads it in its thread."""

    def evaluate(self, revision: str) -> Evaluation:
        """Read and validate one commit (parses only blobs not seen before).

        Raises SourceError (and git or file errors) when the commit cannot be read, and
        InternalError when loading or validating it hits a bug.
        """
        with _no_cyclic_gc():
            return self._evaluate(revision)

    def _evaluate(self, revision: str) -> Evaluation:
        started = time.perf_counter()
        commit = self.source.resolve(revision)
        sha = str(commit.id)
        try:
            snapshot = self.source.snapshot_of(commit)
        except _READ_ERRORS:
            raise
        except Exception as e:
            raise _bug(e, f"loading {sha[:12]}", sha) from e
        loaded = time.perf_counter()
        try:
            report = validate(snapshot, self.validator)
        except Exception as e:
            raise _bug(e, f"validating {sha[:12]}", sha) from e
        return Evaluation(sha, snapshot, report, {"load": loaded - started, "validate": time.perf_counter() - loaded})

    def build(self, snapshot: Snapshot, registered: Iterable[Resource]) -> Build:
        """The mesh model and the config of every proxy whose inputs changed.

        Raises CaError when a mesh's CA cannot be used (a provided CA that does not load),
        and InternalError when building the model or generating a proxy's config hits a bug.
        """
        with _no_cyclic_gc():
            return self._build(snapshot, registered)

    def _build(self, snapshot: Snapshot, registered: Iterable[Resource]) -> Build:
        revision = snapshot.revision or ""
        started = time.perf_counter()
        try:
            convert = health_aware(self._dataplanes.convert, self.health)
            model = build_mesh_model(snapshot.resources, registered, convert, previous_vips=self._vips)
            self._dataplanes.settle()
        except CaError:
            raise
        except Exception as e:
            raise _bug(e, "building the mesh model", revision) from e
        timings = {"build": time.perf_counter() - started}
        rendering = render(
            model,
            self.certs,
            self.compact_outbounds,
            previous=self._views,
            reuse=self._reuse,
            on_bug=lambda e, doing: _bug(e, doing, revision),
            timings=timings,
        )
        views, changed = rendering.views, rendering.resources
        self.certs.forget_except({(v.dataplane.mesh, v.dataplane.name) for v in views.values()})
        removed = frozenset(self._views.keys() - views.keys())
        return Build(model, views, changed, removed, timings)

    def commit(self, build: Build) -> None:
        """Remember what was published, so the next build can skip unchanged proxies and keeps its VIPs."""
        self._views = build.views
        if build.model.vips != self._vips:
            self._vips = build.model.vips
            if self._vips_file is not None:
                try:
                    write_vips(self._vips_file, self._vips)
                except OSError as e:  # serving goes on; the VIPs stay in memory until the next write
                    log.error("cannot write the VIP allocation", extra={"path": str(self._vips_file), "error": str(e)})

    def forget(self) -> None:
        self._views = {}
        self._reuse = Reuse()


FULL_COLLECTION_INTERVAL = 600.0
"""Seconds between full collections of everything, frozen or not (see `_no_cyclic_gc`)."""
_last_full_collection = time.monotonic()


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The cyclic garbage collector paused while a commit is read, validated, built and generated,
    and what they made frozen afterwards.

    Those phases allocate millions of objects that stay alive (the model, the views, the
    config), and each allocation burst made the collector walk them again: at 3,000 proxies a
    cold reconcile took twice as long with it on. Afterwards the survivors go to the collector's
    permanent generation (`gc.freeze`): until the next commit they are only read, yet each full
    collection walked them all again, seconds at 10,000 proxies, paid by whichever push came
    next (an endpoint change to 1,840 proxies after a commit that touched all of them took four
    times its CPU). Reference counting still frees frozen objects when a later commit replaces
    them; the cycles among them, which only a collection frees, are collected by a full
    collection of everything at most every FULL_COLLECTION_INTERVAL seconds."""
    global _last_full_collection
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        now = time.monotonic()
        if now - _last_full_collection >= FULL_COLLECTION_INTERVAL:
            _last_full_collection = now
            gc.unfreeze()
            gc.collect()
        gc.freeze()
        if was_enabled:
            gc.enable()


def _bug(error: Exception, doing: str, revision: str) -> InternalError:
    """The one-line report for the user; the traceback goes to the debug log (`-v`) for whoever fixes it."""
    log.debug("internal error", exc_info=error, extra={"doing": doing, "revision": revision[:12]})
    return InternalError(describe_bug(error, doing))
