"""What the HTTP API needs from the server behind it, and nothing more.

The routes (reconciler/api/routes.py) read the store, the config cache and the metrics, and ask
for the few actions (reconcile now, rollback, resume, wake on a webhook). The control plane
satisfies this protocol; the API never imports it, so the arrow points one way only
(controlplane → api), and a test can serve the routes from a small stand-in.
"""

from __future__ import annotations

from typing import Any, Protocol

from reconciler.api.metrics import Metrics
from reconciler.store import Attempt, Store
from reconciler.xds.cache import ConfigCache

__all__ = ["ApiBackend"]


class ApiBackend(Protocol):
    @property
    def store(self) -> Store:
        """What is served, to whom, and what happened to each commit."""
        ...

    @property
    def cache(self) -> ConfigCache:
        """Each proxy's current Envoy config (`GET /config/{mesh}/{name}`)."""
        ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def branch(self) -> str:
        """The tracked branch (revisions are shown as `<branch>@sha1:<id>`)."""
        ...

    @property
    def repository(self) -> str:
        """Where the mesh is kept, as a user would name it (no credentials): the repository
        to commit to, shown when the API refuses a write."""
        ...

    @property
    def compact_outbounds(self) -> int | None:
        """serve --compact-outbounds: what the inspect endpoints render with, as serving does."""
        ...

    @property
    def webhook_secret(self) -> bytes | None:
        """The shared secret of `POST /hooks/git`; None: no webhook configured."""
        ...

    def not_ready(self) -> list[str]:
        """Why proxies should not be sent here yet; empty when ready."""
        ...

    async def branch_history(self, limit: int) -> dict[str, Any]: ...

    async def commit_diff(self, revision: str) -> dict[str, Any] | None:
        """What `revision` changed against its first parent (reconciler/controlplane/commit_diff.py);
        None when no commit has that name."""
        ...

    async def reconcile(self, reason: str, *, fetch: bool = True) -> Attempt: ...

    async def rollback(self, rev: str, *, force: bool = False, requested_by: str = "") -> tuple[int, dict[str, Any]]: ...

    async def resume(self) -> dict[str, Any]: ...

    def wake(self, *, fetch: bool = False, trigger: str = "watch") -> None:
        """Check the repository now (with `fetch`, a remote too)."""
        ...
