"""Reading a running Envoy from the outside: its process, its admin port, its log.

Used by bench/envoy_outbounds.py for both control planes, so that ours and sovereign are
timed and weighed by the same code.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "Readiness",
    "admin_get",
    "boottime",
    "cpu_seconds",
    "envoy_child",
    "gauges",
    "listener_addresses",
    "process_started",
    "prometheus_totals",
    "rss_mib",
    "stop_process",
    "wait_ready",
]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

READY_GAUGES = (
    "cluster_manager.active_clusters",
    "cluster_manager.warming_clusters",
    "listener_manager.total_listeners_active",
    "listener_manager.total_listeners_warming",
)


def boottime() -> float:
    """Seconds since boot: the clock /proc/<pid>/stat's start times are counted on."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def process_started(pid: int) -> float:
    """When a process was forked, on the boottime() clock (resolution: one clock tick, 10 ms)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[19]) / CLOCK_TICKS  # field 22 of proc(5), counted after the comm field


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used: Envoy's work, whatever else the machine is doing."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def envoy_child(parent: int) -> int | None:
    """The Envoy process `reconciler run-dataplane` (pid `parent`) started, once it exists."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().rpartition(")")
        except OSError:  # a process that ended while we looked
            continue
        if int(rest.split()[1]) == parent and head.partition("(")[2] == "envoy":
            return int(stat.parent.name)
    return None


def admin_get(admin: str, path: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(admin + path, timeout=timeout) as r:
        return str(r.read().decode())


def gauges(admin: str, names: tuple[str, ...] = READY_GAUGES, timeout: float = 10.0) -> dict[str, int]:
    """Exact-name stats; one anchored regex keeps the admin thread's work small."""
    pattern = "^(" + "|".join(re.escape(n) for n in names) + ")$"
    text = admin_get(admin, "/stats?filter=" + urllib.parse.quote(pattern), timeout)
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def prometheus_totals(admin: str, pattern: str) -> dict[str, float]:
    """Stats matching `pattern` from the Prometheus output (the only one with histogram sums),
    each metric name summed over its labels: e.g. every RDS subscription's update_duration_sum
    adds up to envoy_http_rds_update_duration_sum."""
    text = admin_get(admin, "/stats/prometheus?filter=" + urllib.parse.quote(pattern), timeout=60)
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        name = metric.partition("{")[0]
        if 'le="' in metric:  # a bucket, not a total
            continue
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def listener_addresses(admin: str) -> int:
    """Addresses served by active listeners: a listener's own plus its additional_addresses."""
    dump = json.loads(admin_get(admin, "/config_dump?resource=dynamic_listeners", timeout=60))
    total = 0
    for entry in dump.get("configs", []):
        listener = (entry.get("active_state") or {}).get("listener")
        if listener:
            total += 1 + len(listener.get("additional_addresses", []))
    return total


@dataclass
class Readiness:
    """What the admin port said when every expected cluster and listener was active."""

    at: float  # boottime() of the poll that saw it
    stats: dict[str, int] = field(default_factory=dict)
    addresses: int = 0
    polls: int = 0
    stats_cost: float = 0.0  # seconds one read of the gauges took


def wait_ready(
    admin: str,
    *,
    clusters: int,
    addresses: int,
    timeout: float,
    alive: Callable[[], bool],
    interval: float = 0.05,
) -> Readiness:
    """Until /ready is LIVE, at least `clusters` clusters and listeners for `addresses` addresses are
    active, and no cluster or listener is warming.

    Listener counts come from stats while each address is its own listener; when there are fewer
    listeners than addresses (one listener holding many addresses), the listeners' addresses
    are counted in /config_dump once the stats say nothing is warming.
    """
    deadline = time.monotonic() + timeout
    polls = 0
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"Envoy exited while starting (last stats: {last})")
        polls += 1
        try:
            live = admin_get(admin, "/ready", timeout=5).strip() == "LIVE"
        except urllib.error.HTTPError:  # 503 while initializing
            live = False
        except OSError:  # admin not listening yet
            time.sleep(interval)
            continue
        if live:
            seen = boottime()
            # Envoy goes LIVE once its initial clusters and listeners have warmed, unless an
            # initial fetch timed out: the stats below tell which. They cost the admin (main)
            # thread a walk over every stat, so they are read only now
            # and the time reported is that of the LIVE answer they confirm.
            stats = gauges(admin)
            stats_cost = boottime() - seen
            last = stats
            settled = (
                stats.get("cluster_manager.warming_clusters") == 0
                and stats.get("listener_manager.total_listeners_warming") == 0
                and stats.get("cluster_manager.active_clusters", 0) >= clusters
            )
            if settled:
                active = stats.get("listener_manager.total_listeners_active", 0)
                counted = active if active >= addresses else listener_addresses(admin)
                if counted >= addresses:
                    return Readiness(seen, stats, counted, polls, stats_cost)
                last = {**stats, "addresses": counted}
        time.sleep(interval)
    raise TimeoutError(f"Envoy not ready after {timeout:.0f} s (last stats: {last})")


def stop_process(proc: subprocess.Popen[bytes] | None, log: IO[bytes] | None = None) -> None:
    """Stop a child started in its own session (Envoy, sovereign's gunicorn master, which stops
    its workers on SIGTERM): SIGTERM, then SIGKILL to its whole group after 15 s; close its log."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    if log is not None:
        log.close()
