"""sovereign (the Python xDS server on PyPI) for bench/vs_sovereign.py and bench/envoy_outbounds.py:
its own venv, its config, its process, and the bootstrap of an Envoy that polls it over REST.

sovereign is never a dependency of the project: it is installed on first use (or by `make
bench-deps`) into a venv of its own, bench/.venv-sovereign.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _envoy_support import stop_process

__all__ = [
    "POLL_INTERVAL_S",
    "SOVEREIGN_VERSION",
    "SovereignUnavailable",
    "Started",
    "clusters_template",
    "install",
    "rest_bootstrap",
    "sovereign_server",
    "static_cluster",
    "write_clusters",
]

SOVEREIGN_VERSION = "0.32.12"
# The CDS refresh_delay of the REST bootstrap sovereign ships as its own example
# (test/config/bootstrap_rest.yaml in its repository): Envoy asks for clusters every 5 s.
POLL_INTERVAL_S = 5.0

CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

# The template re-reads its data file whenever the file changes, so a change reaches sovereign
# at once: the best case for sovereign, whose own file sources are polled every 30 s by default.
# The resources carry their @type already: sovereign adds it in place after hashing, so objects
# without it would hash differently on the next poll and make Envoy apply every cluster again.
TEMPLATE = """\
import json
import os

PATH = {path!r}
_seen = {{"mtime": None, "resources": None}}


def call(*args, **kwargs):
    mtime = os.stat(PATH).st_mtime_ns
    if mtime != _seen["mtime"]:
        with open(PATH) as f:
            _seen["resources"] = json.load(f)
        _seen["mtime"] = mtime
    return _seen["resources"]
"""


class SovereignUnavailable(RuntimeError):
    """sovereign could not be installed or started here; the message says why."""


def venv_dir() -> Path:
    """bench/.venv-sovereign, as `make bench-deps` makes it (ignored by git)."""
    return Path(__file__).resolve().parent / ".venv-sovereign"


def install() -> Path:
    """The sovereign executable, installed from PyPI into its own venv the first time."""
    venv = venv_dir()
    exe = venv / "bin" / "sovereign"
    if exe.exists():
        return exe
    print(f"installing sovereign=={SOVEREIGN_VERSION} into {venv} ...", flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"sovereign=={SOVEREIGN_VERSION}"],
    ]
    for step in steps:
        try:
            result = subprocess.run(step, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SovereignUnavailable(f"`{' '.join(step)}` failed: {e}") from e
        if result.returncode != 0:
            raise SovereignUnavailable(f"`{' '.join(step)}` exited {result.returncode}:\n{result.stderr[-3000:]}")
    if not exe.exists():
        raise SovereignUnavailable(f"sovereign=={SOVEREIGN_VERSION} installed no {exe}")
    return exe


def static_cluster(name: str, port: int) -> dict[str, Any]:
    """A cluster with its one endpoint inline, as a sovereign user writes it: over REST an EDS
    cluster would be one more poller per cluster."""
    endpoint = {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
    return {
        "@type": CLUSTER_TYPE,
        "name": name,
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]},
    }


def write_clusters(path: Path, clusters: list[dict[str, Any]]) -> None:
    """Replace the data file in one rename, so a poll never reads half of it."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(clusters))
    tmp.replace(path)


@dataclass(frozen=True)
class Started:
    port: int
    pid: int
    launched: float  # time.monotonic() when the process was started
    healthy: float  # time.monotonic() of the first answer to /healthcheck


@contextmanager
def sovereign_server(exe: Path, work: Path, templates: Mapping[str, str], port: int) -> Iterator[Started]:
    """sovereign on 127.0.0.1:`port`, serving each resource type of `templates` (type, e.g.
    "clusters" → the source of its Python template)."""
    work.mkdir(parents=True, exist_ok=True)
    specs = []
    for kind, source in templates.items():
        template = work / f"{kind}_template.py"
        template.write_text(source)
        specs.append({"type": kind, "spec": {"protocol": "python", "serialization": "raw", "path": str(template)}})
    config = work / "sovereign.yaml"
    config.write_text(json.dumps({"templates": {"default": specs}}))  # JSON is YAML
    env = {
        **os.environ,
        "SOVEREIGN_CONFIG": f"file://{config}",
        "SOVEREIGN_HOST": "127.0.0.1",
        "SOVEREIGN_PORT": str(port),
        # gunicorn closes an idle connection after 5 s by default; Envoy, busy applying 10,000
        # clusters for longer than that, would reuse a closed one and wait a refresh_delay.
        "SOVEREIGN_KEEPALIVE": "120",
    }
    log_path = work / "sovereign.log"
    log = open(log_path, "ab")  # noqa: SIM115 (the child process writes to it)
    launched = time.monotonic()
    proc = subprocess.Popen([str(exe)], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = launched + 120
        while True:
            if proc.poll() is not None:
                raise SovereignUnavailable(f"sovereign exited ({proc.returncode}):\n{log_path.read_text(errors='replace')[-3000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SovereignUnavailable("sovereign did not answer /healthcheck within 120 s") from None
                time.sleep(0.02)
        yield Started(port, proc.pid, launched, time.monotonic())
    finally:
        stop_process(proc, log)


def clusters_template(clusters_file: Path) -> str:
    """The template of bench/vs_sovereign.py: the clusters of `clusters_file`, re-read when it changes."""
    return TEMPLATE.format(path=str(clusters_file))


def rest_bootstrap(port: int, admin_port: int, *, listeners: bool = False) -> dict[str, Any]:
    """An Envoy that polls sovereign's /v3/discovery:clusters (and :listeners) every POLL_INTERVAL_S."""
    rest = {
        "resource_api_version": "V3",
        "api_config_source": {
            "api_type": "REST",
            "transport_api_version": "V3",
            "cluster_names": ["sovereign"],
            "refresh_delay": f"{POLL_INTERVAL_S:g}s",
            # Envoy's default of 1 s is shorter than rendering and sending 10,000 clusters.
            "request_timeout": "30s",
        },
    }
    address = {"socket_address": {"address": "127.0.0.1", "port_value": port}}
    return {
        "node": {"id": "client", "cluster": "client"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "dynamic_resources": {"cds_config": rest, **({"lds_config": rest} if listeners else {})},
        "static_resources": {
            "clusters": [
                {
                    "name": "sovereign",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {"cluster_name": "sovereign", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}]},
                }
            ]
        },
    }
