"""`reconciler run-dataplane` under open-files limits, with the real Envoy and control plane.

One control plane serves a mesh of 300 services, each a git-declared Dataplane whose inbound is
a real HTTP workload's port (no mTLS, so no sidecar is needed in front of it), a client calling
all 300, and a builtin gateway with two listeners. Each test starts the client's (or the
gateway's) run-dataplane under `ulimit -n N` and checks what the user sees: how many workers
Envoy runs, the one line that says why, the exit code.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.dataplane.cpu_quota import cpu_quota
from reconciler.dataplane.launcher import affinity_cpus
from reconciler.dataplane.workers import cpu_workers
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_until

pytestmark = pytest.mark.envoy

SERVICES = 300
CPUS = cpu_workers(cpu_quota(), affinity_cpus())
"""Workers run-dataplane starts when the open files do not limit them."""


def service(i: int, port: int) -> str:
    return f"""\
---
type: Dataplane
mesh: default
name: svc-{i}
networking:
  address: 127.0.0.1
  inbound:
    - port: {port}
      tags:
        kuma.io/service: svc-{i}
        kuma.io/protocol: http
"""


def client(name: str, base: str, port: int, count: int) -> str:
    outbounds = "".join(
        f"    - address: {outbound_address(base, i)}\n      port: {port}\n      tags:\n        kuma.io/service: svc-{i}\n"
        for i in range(count)
    )
    return f"type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: 127.0.0.1\n  outbound:\n{outbounds}"


def outbound_address(base: str, i: int) -> str:
    """Each outbound on its own loopback address and one shared port: no port can collide."""
    return f"{base}.{i // 250}.{i % 250 + 1}"


GATEWAY = """\
---
type: Dataplane
mesh: default
name: edge-1
networking:
  address: 127.0.0.1
  gateway:
    type: BUILTIN
    tags:
      kuma.io/service: edge
"""


def mesh_gateway(first: int, second: int) -> str:
    return f"""\
---
type: MeshGateway
mesh: default
name: edge
selectors:
  - match:
      kuma.io/service: edge
conf:
  listeners:
    - port: {first}
      protocol: HTTP
    - port: {second}
      protocol: HTTP
"""


@dataclass
class Mesh:
    cp: ControlPlaneProcess
    work: Path
    workload: Workload
    outbound_port: int
    client_file: Path
    runs: int = 0

    def envoy(self, name: str, nofile: int, *extra: str, dataplane_file: Path | None = None, admin_port: int | None = None) -> EnvoyProcess:
        self.runs += 1  # each run its own work directory and log
        work = self.work / f"run-{self.runs}"
        return EnvoyProcess(self.cp, work, name=name, nofile=nofile, extra=extra, dataplane_file=dataplane_file, admin_port=admin_port)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("limits")
    remote = ConfigRemote(root)
    port = free_port()
    with Workload("upstream") as workload:
        sha = remote.push(
            {
                "mesh.yaml": "type: Mesh\nname: default\n",
                "services.yaml": "".join(service(i, workload.port) for i in range(SERVICES)),
                "client.yaml": client("client", "127.34", port, SERVICES),
                "gateway.yaml": GATEWAY + mesh_gateway(free_port(), free_port()),
            }
        )
        # The same client, to register from a file (under another name: git's would take precedence).
        client_file = root / "registered.yaml"
        client_file.write_text(client("registered", "127.35", port, SERVICES))
        cp = ControlPlaneProcess(remote.bare, root / "state", dataplane_auth=False)
        cp.start()
        try:
            cp.wait_applied(sha, timeout=60)
            yield Mesh(cp, root / "envoys", workload, port, client_file)
        finally:
            cp.stop()


def run_to_exit(envoy: EnvoyProcess, timeout: float = 60.0) -> int:
    envoy.start(wait=False)
    assert envoy.proc is not None
    try:
        return envoy.proc.wait(timeout)
    finally:
        envoy.stop()


def our_lines(output: str) -> list[str]:
    """What run-dataplane itself said (Envoy's log lines start with '[')."""
    return [line for line in output.splitlines() if line.startswith(("run-dataplane:", "warning:"))]


def wait_serving(envoy: EnvoyProcess) -> dict[str, int]:
    """Until Envoy applied its listeners and none is warming (in either outbound shape: make
    test runs this module again with every sidecar compact, where one listener holds them all)."""

    def settled() -> dict[str, int] | None:
        if not envoy.alive():
            raise AssertionError(f"run-dataplane exited:\n{envoy.output()[-3000:]}")
        stats = envoy.stats("listener_manager.")
        applied = stats.get("listener_manager.lds.update_success", 0) >= 1 and stats.get("listener_manager.total_listeners_active", 0) >= 1
        return stats if applied and stats.get("listener_manager.total_listeners_warming") == 0 else None

    return wait_until(settled, 60, interval=0.2, what="listeners active")  # type: ignore[no-any-return]


def test_300_outbounds_under_512_open_files_run_one_worker_and_say_why(mesh: Mesh) -> None:
    envoy = mesh.envoy("client", 512)
    envoy.start(wait=False)
    try:
        wait_serving(envoy)
        assert envoy.stats("server.concurrency")["server.concurrency"] == 1
        for i in (0, SERVICES - 1):
            assert http_get(f"http://{outbound_address('127.34', i)}:{mesh.outbound_port}/") == (200, "upstream\n")
    finally:
        code = envoy.stop()
    assert code == 0, envoy.output()[-3000:]  # SIGTERM reached Envoy, which stopped cleanly
    lines = our_lines(envoy.output())
    if CPUS == 1:
        assert lines == []
    else:
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"run-dataplane: 300 listeners × {CPUS} workers need about ")
        assert "but the hard limit is 512: running 1 worker (raise the limit, e.g. ulimit -Hn " in lines[0]


def test_300_outbounds_under_200_open_files_exit_1_before_envoy_starts(mesh: Mesh) -> None:
    envoy = mesh.envoy("client", 200)
    assert run_to_exit(envoy) == 1
    assert envoy.output().splitlines() == [
        "run-dataplane: 300 listeners need about 468 open files even with 1 worker but the hard limit is 200: "
        "raise it (e.g. ulimit -Hn 1024 or LimitNOFILE=1024) or give this Dataplane fewer inbounds and outbounds"
    ]
    assert not (mesh.work / f"run-{mesh.runs}" / "client" / "bootstrap.json").exists()


def test_a_dataplane_file_is_counted_without_asking_the_control_plane(mesh: Mesh) -> None:
    envoy = mesh.envoy("registered", 200, "--api-address", f"http://127.0.0.1:{free_port()}", dataplane_file=mesh.client_file)
    assert run_to_exit(envoy) == 1
    assert envoy.output().splitlines() == [
        "run-dataplane: 300 listeners need about 468 open files even with 1 worker but the hard limit is 200: "
        "raise it (e.g. ulimit -Hn 1024 or LimitNOFILE=1024) or give this Dataplane fewer inbounds and outbounds"
    ]


def test_forced_workers_that_do_not_fit_warn_then_envoy_failure_is_one_line(mesh: Mesh) -> None:
    envoy = mesh.envoy("client", 512, "--concurrency", "4")
    code = run_to_exit(envoy)
    output = envoy.output()
    assert code == 134, output[-3000:]
    assert "Too many open files" in output  # Envoy's own output is still there, as it came
    assert our_lines(output) == [
        "run-dataplane: warning: 300 listeners × 4 workers need about 1,392 open files but the hard limit is 512: "
        "Envoy may fail to open its listeners (raise the limit, e.g. ulimit -Hn 2048 or LimitNOFILE=2048, or run --concurrency 1)",
        "run-dataplane: Envoy exited with code 134 (SIGABRT): out of open files (socket(2) failed, got error: Too many open files); "
        "300 listeners × 4 workers need about 1,392 and the limit is 512: raise it (e.g. ulimit -Hn 2048 or LimitNOFILE=2048) "
        "or run fewer workers (--concurrency 1)",
    ]
    assert output.rstrip().splitlines()[-1] == our_lines(output)[-1]  # the last thing the user reads


def test_unreachable_api_warns_once_and_skips_the_check(mesh: Mesh) -> None:
    api = f"http://127.0.0.1:{free_port()}"
    envoy = mesh.envoy("client", 512, "--api-address", api)
    envoy.start(wait=False)
    try:
        if CPUS > 1:  # unchecked, Envoy runs a worker per CPU and cannot open 300 × CPUS sockets
            assert envoy.proc is not None
            assert envoy.proc.wait(60) == 134
        else:
            wait_serving(envoy)
    finally:
        envoy.stop()
    lines = our_lines(envoy.output())
    assert lines[0].startswith(f"warning: cannot reach the control plane at {api}/dataplanes/default/client: ")
    assert lines[0].endswith("; open files not checked")
    if CPUS > 1:
        assert lines[1:] == [
            "run-dataplane: Envoy exited with code 134 (SIGABRT): out of open files (socket(2) failed, got error: Too many open files); "
            f"{CPUS} workers ran under a limit of 512 open files: raise the limit (ulimit -Hn, or LimitNOFILE= in a systemd unit) "
            "or run fewer workers (--concurrency)"
        ]


def test_admin_address_in_use_is_named_in_one_line(mesh: Mesh) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        envoy = mesh.envoy("client", 4096, admin_port=port)
        code = run_to_exit(envoy)
    assert code == 1
    assert our_lines(envoy.output())[-1] == (
        f"run-dataplane: Envoy exited with code 1: Envoy's admin address 127.0.0.1:{port} is already in use: "
        "give another --admin-port (or networking.admin.port)"
    )


def test_builtin_gateway_counts_its_mesh_gateway_listeners(mesh: Mesh) -> None:
    envoy = mesh.envoy("edge-1", 150)
    assert run_to_exit(envoy) == 1
    assert envoy.output().splitlines() == [
        "run-dataplane: 2 listeners need about 170 open files even with 1 worker but the hard limit is 150: "
        "raise it (e.g. ulimit -Hn 1024 or LimitNOFILE=1024) or give this Dataplane fewer inbounds and outbounds"
    ]
