"""One real Envoy with 2,500 outbounds under `ulimit -n 4096`, in both outbound shapes.

The 2,500 services are git-declared Dataplanes whose inbounds are three real HTTP workloads'
ports (mTLS off, so no sidecar is needed in front of them). Two clients call all of them,
one per outbound shape, forced by the Dataplane label `reconciler.io/outbound-shape`
(`kuma`: a listener per outbound, as Kuma; `compact`: the control plane's compact shape).
One control plane serves the module.

On this 2-CPU machine Envoy's default of a worker per CPU needs about 5,300 descriptors for
2,500 listeners: run-dataplane runs one worker and says so; `--concurrency 2` forced under
the same limit either serves or fails with one line saying why, and the test checks which.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reconciler.dataplane.cpu_quota import cpu_quota
from reconciler.dataplane.launcher import affinity_cpus
from reconciler.dataplane.workers import cpu_workers
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_until

pytestmark = [pytest.mark.envoy, pytest.mark.both_shapes]  # the shapes are its parameter

SERVICES = 2500
NOFILE = 4096
SHAPES = {"kuma": "127.36", "compact": "127.37"}
"""Outbound shape → the loopback /16 its client's outbounds listen on (one address each)."""
SAMPLED = (0, 1249, 2499)
CPUS = cpu_workers(cpu_quota(), affinity_cpus())


def outbound_address(shape: str, i: int) -> str:
    return f"{SHAPES[shape]}.{i // 250}.{i % 250 + 1}"


def services(ports: list[int]) -> str:
    return "".join(
        f"---\ntype: Dataplane\nmesh: default\nname: svc-{i}\nnetworking:\n  address: 127.0.0.1\n  inbound:\n"
        f"    - port: {ports[i % len(ports)]}\n      tags:\n        kuma.io/service: svc-{i}\n        kuma.io/protocol: http\n"
        for i in range(SERVICES)
    )


def client(shape: str, port: int) -> str:
    outbounds = "".join(
        f"    - address: {outbound_address(shape, i)}\n      port: {port}\n      tags:\n        kuma.io/service: svc-{i}\n"
        for i in range(SERVICES)
    )
    return (
        f"type: Dataplane\nmesh: default\nname: client-{shape}\nlabels:\n  reconciler.io/outbound-shape: {shape}\n"
        f"networking:\n  address: 127.0.0.1\n  outbound:\n{outbounds}"
    )


@dataclass
class Mesh:
    cp: ControlPlaneProcess
    work: Path
    workloads: list[Workload]
    port: int
    runs: list[str] = field(default_factory=list)

    def envoy(self, shape: str, *extra: str) -> EnvoyProcess:
        self.runs.append(shape)
        return EnvoyProcess(self.cp, self.work / f"run-{len(self.runs)}", name=f"client-{shape}", nofile=NOFILE, extra=extra)

    def expected_body(self, i: int) -> str:
        return f"{self.workloads[i % len(self.workloads)].name}\n"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("many-outbounds")
    remote = ConfigRemote(root)
    port = free_port()
    with Workload("upstream-a") as a, Workload("upstream-b") as b, Workload("upstream-c") as c:
        workloads = [a, b, c]
        sha = remote.push(
            {
                "mesh.yaml": "type: Mesh\nname: default\n",
                "services.yaml": services([w.port for w in workloads]),
                **{f"client-{shape}.yaml": client(shape, port) for shape in SHAPES},
            }
        )
        cp = ControlPlaneProcess(remote.bare, root / "state", dataplane_auth=False)
        cp.start()
        try:
            cp.wait_applied(sha, timeout=90)
            yield Mesh(cp, root / "envoys", workloads, port)
        finally:
            cp.stop()


def our_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("run-dataplane:", "warning:"))]


def serving_or_exited(envoy: EnvoyProcess) -> str:
    """'serving' once Envoy applied its listeners and none is warming; 'exited' when it stopped.

    Counted by state, not by number: the compact shape serves the 2,500 addresses from fewer
    listeners (the tests then check every address in the config dump)."""

    def check() -> str | None:
        if not envoy.alive():
            return "exited"
        try:
            stats = envoy.stats("listener_manager.")
        except OSError:
            return None  # admin not up yet
        applied = stats.get("listener_manager.lds.update_success", 0) >= 1 and stats.get("listener_manager.total_listeners_active", 0) >= 1
        return "serving" if applied and stats.get("listener_manager.total_listeners_warming") == 0 else None

    return wait_until(check, 90, interval=0.25, what="listeners active or run-dataplane gone")  # type: ignore[no-any-return]


def active_addresses(envoy: EnvoyProcess) -> tuple[int, set[str]]:
    """(active listeners, the addresses they listen on) from Envoy's config dump; none may be warming."""
    dump = envoy.config_dump()
    listeners_dump = next(c for c in dump["configs"] if c["@type"].endswith("ListenersConfigDump"))
    entries = listeners_dump.get("dynamic_listeners", [])
    assert all("active_state" in entry and "warming_state" not in entry for entry in entries)
    listeners = [entry["active_state"]["listener"] for entry in entries]
    addresses = {
        a["socket_address"]["address"]
        for listener in listeners
        for a in [listener["address"], *(extra["address"] for extra in listener.get("additional_addresses", []))]
    }
    return len(listeners), addresses


def assert_serves_sampled_outbounds(mesh: Mesh, envoy: EnvoyProcess, shape: str) -> None:
    for i in SAMPLED:
        before = mesh.workloads[i % 3].total
        assert http_get(f"http://{outbound_address(shape, i)}:{mesh.port}/svc-{i}") == (200, mesh.expected_body(i)), f"outbound {i}"
        assert mesh.workloads[i % 3].requests[f"/svc-{i}"] >= 1 and mesh.workloads[i % 3].total == before + 1


@pytest.mark.parametrize("shape", list(SHAPES))
def test_2500_outbounds_under_4096_open_files_serve_on_one_worker(mesh: Mesh, shape: str) -> None:
    envoy = mesh.envoy(shape)
    envoy.start(wait=False)
    try:
        assert serving_or_exited(envoy) == "serving", envoy.output()[-3000:]
        assert envoy.stats("server.concurrency")["server.concurrency"] == 1
        count, addresses = active_addresses(envoy)
        assert {outbound_address(shape, i) for i in range(SERVICES)} <= addresses
        active = envoy.stats("listener_manager.total_listeners_active")["listener_manager.total_listeners_active"]
        # Kuma's shape: a listener per outbound; compact: one listener bound to all 2,500 addresses.
        assert count == active == (SERVICES if shape == "kuma" else 1)
        assert_serves_sampled_outbounds(mesh, envoy, shape)
    finally:
        code = envoy.stop()
    assert code == 0, envoy.output()[-3000:]
    lines = our_lines(envoy.output())
    if CPUS == 1:
        assert lines == []
    else:
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"run-dataplane: 2,500 listeners × {CPUS} workers need about ")
        assert "but the hard limit is 4,096: running 1 worker (raise the limit, e.g. ulimit -Hn " in lines[0]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_2500_outbounds_with_two_workers_forced_serve_or_say_why_in_one_line(mesh: Mesh, shape: str) -> None:
    envoy = mesh.envoy(shape, "--concurrency", "2")
    envoy.start(wait=False)
    try:
        outcome = serving_or_exited(envoy)
        if outcome == "serving":
            assert envoy.stats("server.concurrency")["server.concurrency"] == 2
            assert {outbound_address(shape, i) for i in range(SERVICES)} <= active_addresses(envoy)[1]
            assert_serves_sampled_outbounds(mesh, envoy, shape)
    finally:
        code = envoy.stop()
    output = envoy.output()
    warning = (
        "run-dataplane: warning: 2,500 listeners × 2 workers need about 5,304 open files but the hard limit is 4,096: "
        "Envoy may fail to open its listeners (raise the limit, e.g. ulimit -Hn 8192 or LimitNOFILE=8192, or run --concurrency 1)"
    )
    if outcome == "serving":
        assert code == 0 and our_lines(output) == [warning]
    else:
        assert code == 134, output[-3000:]
        assert our_lines(output) == [
            warning,
            "run-dataplane: Envoy exited with code 134 (SIGABRT): out of open files (socket(2) failed, got error: Too many open files); "
            "2,500 listeners × 2 workers need about 5,304 and the limit is 4,096: raise it (e.g. ulimit -Hn 8192 or LimitNOFILE=8192) "
            "or run fewer workers (--concurrency 1)",
        ]
        assert output.rstrip().splitlines()[-1] == our_lines(output)[-1]
