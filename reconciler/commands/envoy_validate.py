"""One `envoy --mode validate` run on one bootstrap file, and Envoy's verdict on it.

reconciler/commands/envoy_check.py is what commands call; reconciler/commands/envoy_runs.py
starts these runs.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EnvoyVerdict", "validate_file", "default_jobs", "TIMEOUT"]

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
