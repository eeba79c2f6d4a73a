"""One Envoy for bench/vs_sovereign.py: started the same way for both control planes, and read
from its admin port: how many clusters are active, and which endpoint one cluster has.
"""

from __future__ import annotations

import json
import resource
import subprocess
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _envoy_support import admin_get, gauges, stop_process

from reconciler.dataplane.launcher import envoy_command

__all__ = ["ClusterWait", "Envoy", "active_cluster_names", "admin_ready", "endpoint_ports", "wait_clusters", "wait_for"]

CLUSTER_GAUGES = ("cluster_manager.active_clusters", "cluster_manager.warming_clusters")
# Our compact listener holds one socket per outbound address, and Envoy binds a new listener's
# sockets before it closes the old one's: adding an outbound to 10,000 needs over 20,000 files.
# Raised where the machine allows it (here the hard limit of 20,000 cannot be raised).
OPEN_FILES = 65536


def _more_open_files() -> None:
    """In the Envoy child before exec: raise its open-files limit (root may raise the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, OPEN_FILES), max(hard, OPEN_FILES)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Envoy:
    """Envoy with run-dataplane's flags and one worker, on a bootstrap written here."""

    def __init__(self, bootstrap: dict[str, Any], work: Path, name: str) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.config = work / f"{name}.bootstrap.json"
        self.config.write_text(json.dumps(bootstrap))
        self.config.chmod(0o600)
        self.log_path = work / f"{name}.envoy.log"
        self.admin = f"http://127.0.0.1:{bootstrap['admin']['address']['socket_address']['port_value']}"
        self.static_clusters = len(bootstrap.get("static_resources", {}).get("clusters", []))
        self.proc: subprocess.Popen[bytes] | None = None
        self.launched = 0.0

    def start(self) -> None:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (the child process writes to it)
        self.launched = time.monotonic()
        command = envoy_command(str(self.config), extra=["--concurrency", "1"])
        self.proc = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_more_open_files
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, self.log)


@dataclass
class ClusterWait:
    at: float  # time.monotonic() when the read that saw the sampled clusters active was answered
    active: int
    reads: int
    slowest_read_s: float


def _active(admin: str, names: list[str]) -> int:
    """How many of `names` are active clusters: name_regex makes Envoy dump those alone, a few ms
    of its main thread at 10,000 clusters where reading any stat walks all of them (0.5 s)."""
    pattern = "^(" + "|".join(n.replace(".", r"\.") for n in names) + ")$"
    query = "resource=dynamic_active_clusters&mask=cluster.name&name_regex=" + urllib.parse.quote(pattern)
    return len(_config_dump(admin, query).get("configs", []))


def wait_clusters(envoy: Envoy, dynamic: int, sample: list[str], timeout: float, interval: float = 0.1) -> ClusterWait:
    """Until `dynamic` clusters besides the bootstrap's are active and none is warming.

    Envoy applies a response's clusters (and their endpoints) in one pass of its main thread, so
    the sampled clusters (the first and last of the response) are polled cheaply, and the
    cluster_manager gauges, costly to read, confirm the count once they are active.
    """
    deadline = time.monotonic() + timeout
    reads, slowest, last = 0, 0.0, {}
    while time.monotonic() < deadline:
        if not envoy.alive():
            raise RuntimeError(f"Envoy exited while starting; see {envoy.log_path}")
        asked = time.monotonic()
        try:
            sampled = _active(envoy.admin, sample)
        except OSError:  # admin not listening yet
            time.sleep(interval)
            continue
        answered = time.monotonic()
        reads += 1
        slowest = max(slowest, answered - asked)
        if sampled == len(sample):
            try:
                last = gauges(envoy.admin, CLUSTER_GAUGES, timeout=60)
            except OSError:  # Envoy's main thread is busy applying clusters: ask again
                continue
            active = last.get("cluster_manager.active_clusters", 0)
            if last.get("cluster_manager.warming_clusters") == 0 and active >= dynamic + envoy.static_clusters:
                return ClusterWait(answered, active, reads, slowest)
        time.sleep(interval)
    raise TimeoutError(f"Envoy has not {dynamic} active clusters after {timeout:.0f} s (last: {last})")


def admin_ready(admin: str) -> bool:
    """/ready says LIVE: Envoy's initial clusters and listeners are all in place."""
    try:
        return admin_get(admin, "/ready", timeout=5).strip() == "LIVE"
    except OSError:  # 503 while initializing, or not listening yet
        return False


def _config_dump(admin: str, query: str) -> dict[str, Any]:
    return json.loads(admin_get(admin, "/config_dump?" + query, timeout=120))  # type: ignore[no-any-return]


def active_cluster_names(admin: str, attempts: int = 5) -> set[str]:
    for attempt in range(attempts):
        try:
            dump = _config_dump(admin, "resource=dynamic_active_clusters&mask=cluster.name")
            break
        except OSError:  # Envoy's main thread still applying config on a busy machine: ask again
            if attempt == attempts - 1:
                raise
    return {c["cluster"]["name"] for c in dump.get("configs", [])}


def _ports(node: Any) -> Iterator[int]:
    if isinstance(node, dict):
        if "socket_address" in node:
            yield int(node["socket_address"].get("port_value", 0))
        for value in node.values():
            yield from _ports(value)
    elif isinstance(node, list):
        for item in node:
            yield from _ports(item)


def endpoint_ports(admin: str, cluster: str) -> set[int]:
    """The endpoint ports of one active cluster: inline (sovereign's STATIC clusters) or from EDS (ours).

    name_regex makes Envoy dump that one cluster instead of all 10,000.
    """
    name = "name_regex=" + urllib.parse.quote("^" + cluster.replace(".", r"\.") + "$")
    try:
        clusters = _config_dump(admin, "resource=dynamic_active_clusters&" + name).get("configs", [])
        if not clusters:
            return set()
        inline = set(_ports(clusters[0]["cluster"].get("load_assignment", {})))
        if inline:
            return inline
        endpoints = _config_dump(admin, "resource=dynamic_endpoint_configs&include_eds&" + name).get("configs", [])
        return set(_ports(endpoints))
    except (urllib.error.HTTPError, json.JSONDecodeError):
        return set()


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.1, what: str = "condition") -> float:
    """time.monotonic() when the first check that held was answered.

    Every check is an admin request served by Envoy's main thread, the thread that applies
    config: polled every 0.1 s, a check of 10-40 ms takes a small share of it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")
