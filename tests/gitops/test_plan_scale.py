"""`reconciler plan` on many proxies: Envoy judges many proxies per run, and still names each
proxy it rejects with its own message; identical configs are judged once; the progress goes to
stderr and leaves the plan on stdout as it was. Real git repositories, the real Envoy."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.commands.envoy_runs import check_with_envoy
from reconciler.commands.plan import run_plan
from reconciler.commands.plan_render import plan_text
from tests.gitops.helpers import ALLOW_ALL, dataplane, mesh
from tests.support import GitRepo, git, mesh_timeout

pytestmark = pytest.mark.envoy

SERVICES = 12
BROKEN = (2, 5, 9)
TIMEOUT = mesh_timeout("a-timeout", "connectionTimeout: 3s")


def proxy(k: int, clash: bool = False) -> str:
    """svc-k on 127.0.0.1:(18000+k), calling the next two services; with `clash` its first
    outbound takes the port of its own inbound, which Envoy refuses and the validator does not."""
    targets = {f"svc-{(k + d) % SERVICES}": 20000 + d for d in (1, 2)}
    if clash:
        targets[f"svc-{(k + 1) % SERVICES}"] = 18000 + k
    return dataplane(f"svc-{k}", 18000 + k, 19000 + k, 19500 + k, targets)


@pytest.fixture
def many(tmp_path: Path) -> GitRepo:
    """main: 12 proxies; `timeout`: a mesh-wide timeout (every proxy changes); `broken`: the
    timeout and three proxies whose outbound clashes with their inbound."""
    repo = GitRepo(tmp_path / "config")
    repo.commit(
        {"meshes/default.yaml": mesh(), "policies/allow-all.yaml": ALLOW_ALL}
        | {f"dataplanes/svc-{k}.yaml": proxy(k) for k in range(SERVICES)},
        "base",
    )
    for name, files in {
        "timeout": {"policies/timeout.yaml": TIMEOUT},
        "broken": {"policies/timeout.yaml": TIMEOUT} | {f"dataplanes/svc-{k}.yaml": proxy(k, clash=True) for k in BROKEN},
    }.items():
        git(repo.path, "checkout", "-q", "-B", name, "main")
        repo.commit(files, name)
        git(repo.path, "checkout", "-q", "main")
    return repo


@pytest.mark.parametrize("jobs", [1, 2])
def test_each_proxy_envoy_rejects_is_named_with_its_own_error_among_proxies_checked_together(many: GitRepo, jobs: int) -> None:
    plan = run_plan(str(many.path), "", "main", "broken", jobs=jobs)
    assert len(plan.proxies) == SERVICES
    assert [p.node_id for p in plan.rejected_by_envoy] == [f"default.svc-{k}" for k in sorted(BROKEN, key=str)]
    for p in plan.rejected_by_envoy:
        port = 18000 + int(p.node_id.rpartition("-")[2])
        assert p.envoy is not None
        assert f"has duplicate address '127.0.0.1:{port}' as existing listener" in p.envoy.message, p.envoy.message
    accepted = [p.node_id for p in plan.proxies if p.envoy is not None and p.envoy.ok]
    assert len(accepted) == SERVICES - len(BROKEN)
    assert "invalid: Envoy rejects the config of 3 proxies (default.svc-2, default.svc-5, default.svc-9)" in plan_text(plan)


def bootstrap(node: str, port: int, listeners: list[tuple[str, int, str]], clusters: list[str]) -> dict[str, Any]:
    """A static bootstrap: HTTP listeners (name, port, cluster of their one route) on 127.0.0.1,
    static clusters. Envoy refuses a route to a cluster the bootstrap does not have."""
    hcm = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    router = {"name": "router", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}

    def routes(name: str, target: str) -> dict[str, Any]:
        return {
            "name": name,
            "virtualHosts": [{"name": name, "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": target}}]}],
        }

    return {
        "node": {"id": node, "cluster": node},
        "admin": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": port}}},
        "staticResources": {
            "listeners": [
                {
                    "name": name,
                    "address": {"socketAddress": {"address": "127.0.0.1", "portValue": lport}},
                    "filterChains": [
                        {
                            "filters": [
                                {
                                    "name": "hcm",
                                    "typedConfig": {
                                        "@type": hcm,
                                        "statPrefix": name,
                                        "routeConfig": routes(name, target),
                                        "httpFilters": [router],
                                    },
                                }
                            ]
                        }
                    ],
                }
                for name, lport, target in listeners
            ],
            "clusters": [
                {
                    "name": c,
                    "type": "STATIC",
                    "loadAssignment": {
                        "clusterName": c,
                        "endpoints": [
                            {"lbEndpoints": [{"endpoint": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": 9}}}}]}
                        ],
                    },
                }
                for c in clusters
            ],
        },
    }


def test_checking_proxies_together_accepts_nothing_envoy_would_refuse_alone() -> None:
    configs = {
        # Refers to cluster x, which only its neighbours have (in the same shape).
        "dangling": bootstrap("dangling", 9901, [("out", 10000, "x")], ["y"]),
        "has-x": bootstrap("has-x", 9902, [("out", 10000, "x")], ["x"]),
        "has-x-too": bootstrap("has-x-too", 9903, [("out", 10000, "x")], ["x", "y"]),
        # Two listeners of one proxy on one address; its neighbours use that address once each.
        "clash": bootstrap("clash", 9904, [("a", 11000, "x"), ("b", 11000, "x")], ["x"]),
        "a-alone": bootstrap("a-alone", 9905, [("a", 11000, "x")], ["x"]),
        "b-alone": bootstrap("b-alone", 9906, [("b", 11000, "x")], ["x"]),
    }
    result = check_with_envoy(configs, jobs=1)
    assert {n for n, v in result.verdicts.items() if not v.ok} == {"dangling", "clash"}
    assert "unknown cluster 'x'" in result.verdicts["dangling"].message
    assert "has duplicate address '127.0.0.1:11000'" in result.verdicts["clash"].message
    assert result.distinct == 6


def test_identical_configs_are_checked_once() -> None:
    one = bootstrap("a", 9901, [("out", 10000, "x")], ["x"])
    configs = {f"replica-{i}": {**one, "node": {"id": f"replica-{i}", "cluster": "a"}} for i in range(20)}
    result = check_with_envoy(configs, jobs=2)
    assert result.distinct == 1 and result.runs == 1
    assert all(v.ok for v in result.verdicts.values()) and list(result.verdicts) == list(configs)


def plan_process(repo: GitRepo, stderr: int) -> subprocess.CompletedProcess[bytes]:
    args = [sys.executable, "-m", "reconciler", "plan", "--repo", str(repo.path), "--base", "main", "--head", "timeout"]
    # Kuma's outbound shape, as the in-process plan it is compared with (the compact pass of
    # `make test` sets RECONCILER_COMPACT_OUTBOUNDS, which only the CLI reads).
    env = {k: v for k, v in os.environ.items() if k != "RECONCILER_COMPACT_OUTBOUNDS"}
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=stderr, check=False, timeout=120, env=env)


def test_progress_goes_to_stderr_and_the_plan_on_stdout_is_unchanged(many: GitRepo) -> None:
    expected = (plan_text(run_plan(str(many.path), "", "main", "timeout")) + "\n").encode()

    logged = plan_process(many, subprocess.PIPE)
    assert logged.returncode == 0, logged.stderr
    assert logged.stdout == expected
    lines = logged.stderr.decode().splitlines()
    assert lines[0] == f"envoy: validating {SERVICES} proxies"
    assert lines[-1].startswith(f"envoy: {SERVICES} proxies checked: {SERVICES} distinct configs in ")

    # On a terminal: a progress bar, drawn on stderr only.
    primary, secondary = pty.openpty()
    try:
        on_tty = plan_process(many, secondary)
        os.close(secondary)
        drawn = b""
        while chunk := _read(primary):
            drawn += chunk
    finally:
        os.close(primary)
    assert on_tty.returncode == 0 and on_tty.stdout == expected
    assert b"envoy: validating proxies" in drawn and f"{SERVICES}/{SERVICES}".encode() in drawn


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the terminal's other end is closed: all was read
        return b""
