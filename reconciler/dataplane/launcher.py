"""`reconciler run-dataplane`: write the bootstrap, run Envoy, pass signals and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from reconciler.dataplane.envoy_binary import find_envoy

__all__ = ["run_envoy", "envoy_command"]


def envoy_command(config_path: str, *, log_level: str = "info", extra: Sequence[str] = ()) -> list[str]:
    return [
        find_envoy(),
        "--config-path", config_path,
        "--log-level", log_level,
        # Several dataplanes share one host: each needs its own shared-memory base id.
        "--use-dynamic-base-id",
        "--drain-time-s", "1",
        *extra,
    ]


def run_envoy(config: dict[str, Any], *, work_dir: str | None = None, log_level: str = "info", extra: Sequence[str] = ()) -> int:
    """Run Envoy in the foreground until it exits; SIGINT/SIGTERM/SIGHUP are passed to it."""
    find_envoy()  # no Envoy: say what to install before writing anything
    directory = Path(work_dir or tempfile.mkdtemp(prefix="reconciler-dp-"))
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "bootstrap.json"
    # The bootstrap carries the dataplane token: readable by this user only.
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(config, indent=2))
    os.chmod(config_path, 0o600)
    proc = subprocess.Popen(envoy_command(str(config_path), log_level=log_level, extra=extra))

    def forward(signum: int, _frame: FrameType | None) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    # A signal-terminated Envoy exits like a shell would report it.
    return 128 - code if code < 0 else code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_envoy(json.loads(Path(sys.argv[1]).read_text())))
