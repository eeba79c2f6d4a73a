"""How many open files an Envoy sidecar needs, and the process's limit on them.

Every listener holds one socket per worker thread: Envoy dup()s the listening socket for each
worker, with or without SO_REUSEPORT, and whether the addresses are separate listeners or one
listener's additional addresses. Measured with Envoy 1.40 (static listeners, idle):
listeners × workers + 23 + 4 × workers descriptors, e.g. 200 × 4 → 839; with the ADS stream
and the admin listener of a sidecar it was 841. On top of that every connection holds one
descriptor: a request passing through holds its downstream and its upstream connection.

So the reserve beside the listeners' sockets is Envoy's own (32 + 8 per worker: the measured
figure with room) plus room for connections: at least 128, or a sixteenth of the limit when the
limit is large (whoever raised the limit far expects many connections).
"""

from __future__ import annotations

import resource

__all__ = [
    "reserve",
    "files_needed",
    "most_workers_that_fit",
    "limit_to_suggest",
    "raise_soft_limit",
    "UNLIMITED",
]

ENVOY_BASE = 32
PER_WORKER = 8
MIN_CONNECTIONS = 128
UNLIMITED: int | None = None
"""A hard limit of RLIM_INFINITY: everything fits."""


def reserve(workers: int, limit: int) -> int:
    """Descriptors kept for everything but the listeners' sockets."""
    return ENVOY_BASE + PER_WORKER * workers + max(MIN_CONNECTIONS, limit // 16)


def files_needed(listeners: int, workers: int, limit: int) -> int:
    """About how many open files Envoy needs with these listeners and workers under `limit`."""
    return listeners * workers + reserve(workers, limit)


def most_workers_that_fit(listeners: int, limit: int | None, upto: int) -> int:
    """The most workers (at most `upto`) whose open files fit the limit; 0 when even one does not."""
    if limit is None:
        return upto
    for workers in range(upto, 0, -1):
        if files_needed(listeners, workers, limit) <= limit:
            return workers
    return 0


def limit_to_suggest(listeners: int, workers: int) -> int:
    """A round limit (a power of two, at least 1024) under which `workers` workers fit."""
    limit = 1024
    while files_needed(listeners, workers, limit) > limit:
        limit *= 2
    return limit


def raise_soft_limit() -> int | None:
    """Raise this process's soft limit on open files to the hard one, as Envoy does for itself,
    so Envoy (a child) starts with it. Returns the limit Envoy gets (None: unlimited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass  # e.g. macOS refuses RLIM_INFINITY for files: the soft limit is what there is
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)
