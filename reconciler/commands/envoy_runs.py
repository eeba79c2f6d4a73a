"""Validate thousands of proxies' configs with Envoy in few runs: dedupe, batch, parallelise.

`check_with_envoy` hands Envoy each distinct config once (proxies whose bootstraps differ only
in their node are one config), merges up to `BATCH` distinct configs into one bootstrap
(reconciler/commands/envoy_batch.py) and runs `--jobs` Envoys at a time. A rejected batch is
split in halves until each rejected proxy has been validated alone with its own, unchanged
config: its verdict, Envoy's message included, is the one a run of its own gives, and it is
shared by every proxy with that config. Configs go to a private temporary directory (they may
hold private keys), each file removed once its run is over.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

from reconciler.commands.envoy_batch import Batchable, batchable, merged, shell_key
from reconciler.commands.envoy_validate import TIMEOUT, EnvoyVerdict, default_jobs, validate_file
from reconciler.dataplane.envoy_binary import find_envoy

__all__ = ["EnvoyCheckResult", "Progress", "check_with_envoy", "BATCH"]

BATCH = 50
"""Distinct configs per Envoy run at most: large enough that Envoy's start-up is paid rarely,
small enough that a rejected batch is bisected in a few runs."""

CHUNK = 400
"""Configs read before their first runs start: enough to fill batches of neighbours."""

STRINGS_KEPT = 50_000
"""Resources whose strings are remembered (by text) for the next proxies that have them."""

Progress = Callable[[int], None]
"""Called with the number of proxies whose verdict just became known."""


@dataclass(frozen=True, slots=True)
class EnvoyCheckResult:
    verdicts: dict[str, EnvoyVerdict]
    """By node id, in the order of the input."""
    distinct: int
    """Distinct configs among them: what Envoy had to judge."""
    runs: int
    """Envoy processes started."""


@dataclass(frozen=True, slots=True)
class _Unit:
    """Distinct configs (by their key) judged by one Envoy run."""

    keys: tuple[str, ...]


def check_with_envoy(
    configs: Mapping[str, Mapping[str, Any]],
    *,
    envoy: str | None = None,
    jobs: int | None = None,
    timeout: float = TIMEOUT,
    progress: Progress | None = None,
) -> EnvoyCheckResult:
    """Envoy's verdict on each node's bootstrap. Raises EnvoyNotFound when there is no Envoy."""
    if not configs:
        return EnvoyCheckResult({}, 0, 0)
    binary = envoy or find_envoy()
    workers = jobs or default_jobs()
    key_of: dict[str, str] = {}
    members: dict[str, int] = {}
    held: dict[str, Mapping[str, Any]] = {}
    """The configs not judged yet (a judged one is let go: 10,000 configs do not fit in memory)."""
    parts: dict[str, Batchable | None] = {}
    judged: dict[str, EnvoyVerdict] = {}
    strings: dict[str, frozenset[str]] = {}
    runs = count()
    files = count()
    with tempfile.TemporaryDirectory(prefix="reconciler-envoy-") as tmp, ThreadPoolExecutor(workers, "envoy-validate") as pool:

        def run(unit: _Unit) -> EnvoyVerdict:
            next(runs)
            if len(unit.keys) == 1:
                config = held[unit.keys[0]]
            else:
                config = merged(held[unit.keys[0]], [p for k in unit.keys if (p := parts[k]) is not None])
            path = Path(tmp) / f"{next(files):06d}.json"
            _write_private(path, json.dumps(config))
            try:
                return validate_file(binary, path, "", timeout)
            finally:
                path.unlink(missing_ok=True)

        pending: dict[Future[EnvoyVerdict], _Unit] = {}

        def settle(block: bool) -> None:
            done, _ = wait(pending, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            for future in done:
                unit = pending.pop(future)
                verdict = future.result()
                if verdict.ok or len(unit.keys) == 1:
                    for key in unit.keys:
                        judged[key] = verdict
                        del held[key], parts[key]
                        if progress is not None:
                            progress(members[key])
                    continue
                half = len(unit.keys) // 2
                for keys in (unit.keys[:half], unit.keys[half:]):
                    pending[pool.submit(run, _Unit(keys))] = _Unit(keys)

        # Configs may be computed as they are asked for: Envoy starts on the first ones while the
        # next ones are built.
        for chunk in _chunks(list(configs), CHUNK):
            new = []
            for node_id in chunk:
                config = configs[node_id]
                key = key_of[node_id] = _content_key(config)
                seen = key in members
                members[key] = members.get(key, 0) + 1
                if seen:
                    if key in judged and progress is not None:
                        progress(1)
                    continue
                held[key] = config
                parts[key] = batchable(config, strings)
                new.append(key)
            if len(strings) > STRINGS_KEPT:
                strings.clear()
            for unit in _units(new, held, parts, workers):
                pending[pool.submit(run, unit)] = unit
            settle(block=False)
            # Build ahead of Envoy only so far: what waits for Envoy is held in memory.
            while len(pending) > 4 * workers:
                settle(block=True)
        while pending:
            settle(block=True)
    verdicts = {node_id: EnvoyVerdict(node_id, judged[key].ok, judged[key].message) for node_id, key in key_of.items()}
    return EnvoyCheckResult(verdicts, len(members), next(runs))


def _content_key(config: Mapping[str, Any]) -> str:
    """Equal for bootstraps that differ at most in their node (which Envoy does not validate)."""
    text = json.dumps({k: v for k, v in config.items() if k != "node"}, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _units(keys: Sequence[str], distinct: Mapping[str, Mapping[str, Any]], parts: Mapping[str, Batchable | None], jobs: int) -> list[_Unit]:
    """The first runs of these configs: those that can be merged and share the rest of the
    bootstrap, `BATCH` at most per run and spread over the `jobs` workers; the others alone."""
    alone = [_Unit((key,)) for key in keys if parts[key] is None]
    by_shell: dict[str, list[str]] = {}
    for key in keys:
        if parts[key] is not None:
            by_shell.setdefault(shell_key(distinct[key]), []).append(key)
    batched = []
    for group in by_shell.values():
        # Neighbours share clusters, which a batch then validates once.
        group.sort(key=lambda k: parts[k].signature())  # type: ignore[union-attr]
        size = max(1, min(BATCH, math.ceil(len(group) / jobs)))
        batched += [_Unit(tuple(chunk)) for chunk in _chunks(group, size)]
    return batched + alone


def _chunks(keys: Sequence[str], size: int) -> list[Sequence[str]]:
    """`keys` in runs of `size`."""
    return [keys[i : i + size] for i in range(0, len(keys), size)]


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
