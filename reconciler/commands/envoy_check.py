"""Ask the real Envoy whether it accepts a config: `envoy --mode validate` on static bootstraps.

Envoy checks far more than our validator can (every proto constraint, duplicate listener
addresses, routes to unknown clusters, filter configs), so `plan` and `reconcile --out --check`
hand each proxy's static config to it. Runs are independent processes, run in parallel up to a
bound; the configs go to a private temporary directory (they may hold private keys) that is
removed afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.dataplane.envoy_binary import find_envoy
from reconciler.xds.static import to_yaml

__all__ = ["EnvoyVerdict", "validate_with_envoy", "validate_file", "default_jobs"]

TIMEOUT = 60.0
"""Seconds one validation may take (Envoy usually needs well under one)."""

_PREFIX = re.compile(r"^error initializing configuration '[^']*':\s*")


@dataclass(frozen=True, slots=True)
class EnvoyVerdict:
    """What Envoy said about one proxy's config: accepted, or its own error message."""

    node_id: str
    ok: bool
    message: str = ""


def default_jobs() -> int:
    """Parallel Envoy validations: one per CPU, at most 8 (each is a short-lived process)."""
    return max(1, min(8, os.cpu_count() or 2))


def validate_file(envoy: str, path: Path | str, node_id: str = "", timeout: float = TIMEOUT) -> EnvoyVerdict:
    """`envoy --mode validate -c path`; on rejection, Envoy's message without the file name."""
    args = [envoy, "--mode", "validate", "-c", str(path), "--log-level", "error", "--log-format", "%v", "--concurrency", "1"]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return EnvoyVerdict(node_id, False, f"envoy did not finish validating in {timeout:g}s")
    if done.returncode == 0:
        return EnvoyVerdict(node_id, True)
    return EnvoyVerdict(node_id, False, _message(done.stdout + "\n" + done.stderr, done.returncode))


def _message(output: str, code: int) -> str:
    lines = [_PREFIX.sub("", line).strip() for line in output.splitlines() if line.strip()]
    if not lines:
        return f"envoy exited with code {code} and no message"
    return "\n".join(lines)


def validate_with_envoy(
    configs: Mapping[str, Mapping[str, Any]], *, envoy: str | None = None, jobs: int | None = None, timeout: float = TIMEOUT
) -> dict[str, EnvoyVerdict]:
    """Validate each node's bootstrap with Envoy, in parallel; verdicts by node id, in input order.

    Raises EnvoyNotFound when no Envoy binary can be found.
    """
    if not configs:
        return {}
    binary = envoy or find_envoy()
    with tempfile.TemporaryDirectory(prefix="reconciler-envoy-") as tmp:
        paths = {}
        for i, (node_id, config) in enumerate(configs.items()):
            path = Path(tmp) / f"{i:05d}.yaml"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(to_yaml(config))
            paths[node_id] = path
        with ThreadPoolExecutor(max_workers=jobs or default_jobs(), thread_name_prefix="envoy-validate") as pool:
            futures = {node_id: pool.submit(validate_file, binary, path, node_id, timeout) for node_id, path in paths.items()}
            return {node_id: future.result() for node_id, future in futures.items()}
