"""How many worker threads Envoy runs for a sidecar: the decision, as a pure function.

Given `--concurrency N`, Envoy runs N (kuma-dp's flag). Otherwise the CPUs decide: with a
cgroup CPU quota, ceil(quota) workers, at most the CPUs in the affinity mask; without one,
Envoy's `--cpuset-threads` on Linux (as kuma-dp passes), which is the CPUs in the affinity
mask. Then the open files decide: each listener needs one socket per worker, so when the
workers the CPUs allow do not fit the hard limit, fewer run (at least one); when not even one
fits, Envoy is not started. Workers the user forced are started anyway, with a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reconciler.dataplane.open_files import files_needed, limit_to_suggest, most_workers_that_fit

__all__ = ["WorkerChoice", "cpu_workers", "choose_workers", "plural"]


@dataclass(frozen=True)
class WorkerChoice:
    workers: int
    """How many workers Envoy will run."""
    args: tuple[str, ...]
    """Envoy's flags that make it so."""
    message: str | None = None
    """One line for the user, when there is something to say."""
    fatal: bool = False
    """Do not start Envoy: `message` says why."""


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def cpu_workers(quota: float | None, affinity: int) -> int:
    """Workers the CPUs allow: ceil(quota) but at most the CPUs in the affinity mask, or all of those."""
    affinity = max(1, affinity)
    if quota is None:
        return affinity
    return max(1, min(affinity, math.ceil(quota - 1e-9)))  # 150000/100000 is 1.5 → 2; 1.0000000001 stays 1


def choose_workers(
    *,
    forced: int | None,
    quota: float | None,
    affinity: int,
    listeners: int | None,
    limit: int | None,
    linux: bool = True,
) -> WorkerChoice:
    """Workers for Envoy. `listeners` None: not known (the plan is skipped); `limit` None: no limit."""
    if forced is not None:
        args: tuple[str, ...] = ("--concurrency", str(forced))
        if listeners is None or limit is None:
            return WorkerChoice(forced, args)
        fit = most_workers_that_fit(listeners, limit, forced)
        if fit == forced:
            return WorkerChoice(forced, args)
        need = files_needed(listeners, forced, limit)
        instead = f"run --concurrency {fit}" if fit else "give this Dataplane fewer inbounds and outbounds"
        return WorkerChoice(
            forced,
            args,
            (
                f"run-dataplane: warning: {_listeners_times(listeners, forced)} need about {need:,} open files but the hard limit is {limit:,}: "
                f"Envoy may fail to open its listeners (raise the limit, e.g. {_raise(limit_to_suggest(listeners, forced))}, or {instead})"
            ),
        )
    cpus = cpu_workers(quota, affinity)
    if quota is not None:
        args = ("--concurrency", str(cpus))
    else:
        args = ("--cpuset-threads",) if linux else ()
    if listeners is None or limit is None:
        return WorkerChoice(cpus, args)
    fit = most_workers_that_fit(listeners, limit, cpus)
    if fit == cpus:
        return WorkerChoice(cpus, args)
    if fit == 0:
        suggest = limit_to_suggest(listeners, 1)
        return WorkerChoice(
            0,
            (),
            (
                f"run-dataplane: {plural(listeners, 'listener')} need about {files_needed(listeners, 1, limit):,} open files even with 1 worker "
                f"but the hard limit is {limit:,}: raise it (e.g. {_raise(suggest)}) or give this Dataplane fewer inbounds and outbounds"
            ),
            fatal=True,
        )
    return WorkerChoice(
        fit,
        ("--concurrency", str(fit)),
        (
            f"run-dataplane: {_listeners_times(listeners, cpus)} need about {files_needed(listeners, cpus, limit):,} open files "
            f"but the hard limit is {limit:,}: running {plural(fit, 'worker')} "
            f"(raise the limit, e.g. {_raise(limit_to_suggest(listeners, cpus))}, to run {cpus})"
        ),
    )


def _listeners_times(listeners: int, workers: int) -> str:
    return f"{plural(listeners, 'listener')} × {plural(workers, 'worker')}"


def _raise(limit: int) -> str:
    return f"ulimit -Hn {limit} or LimitNOFILE={limit}"
