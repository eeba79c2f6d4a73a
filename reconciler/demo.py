"""`reconciler demo`: the whole loop on one machine, from example-repo/ to live traffic.

Creates a bare repository seeded from the bundled example (plus a work clone to edit and
push from, tracking it, so the printed `git push` works as it is), starts the control plane,
one small HTTP (or TCP echo) workload per inbound of every Dataplane, and an Envoy sidecar per
Dataplane, all on 127.0.0.1. Ctrl-C stops everything it started.

Before anything is created or started, every port it will bind is checked: a taken one is named
in one line with a base port that moves them all (reconciler/demo_ports.py).

The example's access logs, metrics and traces stay on the machine too: log files in the state
directory, a Prometheus endpoint per sidecar with a prometheus.yml to scrape them, and a Zipkin
receiver for the spans; the instructions say where (reconciler/demo_telemetry.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.server
import logging
import os
import shlex
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from reconciler.ca.signing_keys import SigningKeys
from reconciler.ca.tokens import issue_token
from reconciler.ca.xds_tls import ca_cert_path
from reconciler.controlplane import ControlPlane, ServeSettings
from reconciler.dataplane.envoy_binary import find_envoy
from reconciler.demo_ports import PLAN_FIRST, PLAN_SPAN, control_plane_ports, first_taken, free_base, move_ports_in_yaml, planned_ports
from reconciler.demo_telemetry import ZipkinReceiver, move_log_paths, start_telemetry
from reconciler.mesh.model import Dataplane, dataplane_from_resource
from reconciler.model import Snapshot
from reconciler.source.git import read_directory

__all__ = ["DemoSettings", "DemoNotStarted", "run_demo", "example_repo_path", "seed_repositories"]

log = logging.getLogger(__name__)

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "reconciler demo",
    "GIT_AUTHOR_EMAIL": "demo@mesh-reconciler.local",
    "GIT_COMMITTER_NAME": "reconciler demo",
    "GIT_COMMITTER_EMAIL": "demo@mesh-reconciler.local",
}


def example_repo_path() -> Path:
    """example-repo/ of the source tree (the demo runs from a checkout)."""
    here = Path(__file__).resolve().parents[1] / "example-repo"
    if here.is_dir():
        return here
    raise FileNotFoundError("example-repo/ not found: run the demo from a checkout of mesh-reconciler")


@dataclass(frozen=True, slots=True)
class DemoSettings:
    state_dir: str = ".demo"
    example: str = ""
    xds_port: int | None = None
    """None: 5678, or base+678 with a base port."""
    api_port: int | None = None
    """None: 5681, or base+681 with a base port."""
    envoy_log_level: str = "warning"
    base_port: int | None = None
    """Move every port of the demo into base…base+4999 (demo_ports.py); None keeps the example's."""

    @property
    def ports(self) -> tuple[int, int]:
        """(xDS, API) the control plane listens on."""
        xds, api = control_plane_ports(self.base_port)
        return self.xds_port or xds, self.api_port or api


class DemoNotStarted(click.ClickException):
    """A port the demo needs is taken, or its state was seeded for other ports: exit 2, before
    anything was started."""

    exit_code = 2


BASE_FILE = "base-port"
"""In the state directory: the base the seeded repository's ports were moved to."""


@dataclass
class _Running:
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    servers: list[socketserver.BaseServer] = field(default_factory=list)
    receivers: list[ZipkinReceiver] = field(default_factory=list)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env={**os.environ, **GIT_IDENTITY})


def stage_example(example: Path, target: Path, base: int | None, log_dir: Path | None = None) -> None:
    """Copy the example's files to `target`, their ports moved to `base` when one is given and
    their access-log files into `log_dir` when one is given."""
    shutil.copytree(example, target, ignore=shutil.ignore_patterns(".git"))
    for path in sorted(p for p in target.rglob("*") if p.suffix in (".yaml", ".yml")):
        text = path.read_text(encoding="utf-8")
        moved = text if base is None else move_ports_in_yaml(text, base)
        moved = moved if log_dir is None else move_log_paths(moved, log_dir)
        if moved != text:
            path.write_text(moved, encoding="utf-8")


def seed_repositories(staged: Path, state: Path) -> tuple[Path, Path]:
    """A bare repository holding the staged files as its first commit, and a clone to work in
    that tracks it: `git push` and `git pull` need no arguments there."""
    bare, work = state / "config.git", state / "work"
    state.mkdir(parents=True, exist_ok=True)
    _git(state, "init", "-q", "--bare", "-b", "main", str(bare))
    shutil.move(str(staged), str(work))
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "Seed from example-repo")
    _git(work, "remote", "add", "origin", str(bare))
    _git(work, "push", "-q", "-u", "origin", "main")
    _prepare_clone(work)
    return bare, work


def _prepare_clone(work: Path) -> None:
    """What the printed `git commit -am … && git push` needs in the clone: an upstream (states
    seeded before it was set get it too), and an author when git has none configured."""
    _git(work, "config", "branch.main.remote", "origin")
    _git(work, "config", "branch.main.merge", "refs/heads/main")
    configured = subprocess.run(["git", "config", "user.email"], cwd=work, capture_output=True, check=False)
    if configured.returncode != 0:
        _git(work, "config", "user.name", GIT_IDENTITY["GIT_AUTHOR_NAME"])
        _git(work, "config", "user.email", GIT_IDENTITY["GIT_AUTHOR_EMAIL"])


class _Workload(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    identity = "workload"

    def do_GET(self) -> None:
        body = f"{self.identity} {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


class _Echo(socketserver.BaseRequestHandler):
    identity = "tcp"

    def handle(self) -> None:
        self.request.sendall(f"{self.identity}\n".encode())
        while data := self.request.recv(4096):
            self.request.sendall(data)


def _start_workloads(dataplanes: list[Dataplane], running: _Running) -> list[str]:
    started = []
    for dp in dataplanes:
        for inbound in dp.inbounds:
            identity = f"{inbound.service} {inbound.tags.get('version', '')} ({dp.name})".replace("  ", " ")
            address = (inbound.service_address, inbound.service_port)
            if inbound.protocol in ("http", "http2", "grpc"):
                handler: Any = type("Workload", (_Workload,), {"identity": identity})
                server: socketserver.BaseServer = http.server.ThreadingHTTPServer(address, handler)
            else:
                handler = type("Echo", (_Echo,), {"identity": identity})
                server = socketserver.ThreadingTCPServer(address, handler)
            server.daemon_threads = True  # type: ignore[attr-defined]
            threading.Thread(target=server.serve_forever, daemon=True).start()
            running.servers.append(server)
            started.append(f"{identity} on {address[0]}:{address[1]}")
    return started


def _start_envoys(dataplanes: list[Dataplane], settings: DemoSettings, state: Path, running: _Running) -> None:
    # Each sidecar proves who it is with a token signed by the control plane's key, and checks
    # the control plane's xDS certificate against its CA (both in the control plane's state).
    cp_state = state / "control-plane"
    keys = SigningKeys.open(cp_state)
    for dp in dataplanes:
        token_file = state / "envoy" / f"{dp.name}.token"
        token_file.unlink(missing_ok=True)
        token_file.touch(mode=0o600)
        token_file.write_text(issue_token(keys, mesh=dp.mesh, name=dp.name, valid_for=7 * 86400) + "\n")
        args = [
            sys.executable,
            "-m",
            "reconciler",
            "run-dataplane",
            "--cp-address",
            f"127.0.0.1:{settings.ports[0]}",
            "--api-address",
            f"http://127.0.0.1:{settings.ports[1]}",
            "--mesh",
            dp.mesh,
            "--name",
            dp.name,
            "--admin-port",
            str(dp.admin_port),
            "--work-dir",
            str(state / "envoy" / dp.name),
            "--log-level",
            settings.envoy_log_level,
            "--dataplane-token-file",
            str(token_file),
            "--ca-cert",
            str(ca_cert_path(cp_state)),
        ]
        logfile = open(state / "envoy" / f"{dp.name}.log", "ab")  # noqa: SIM115 (the child process writes to it)
        running.processes.append(subprocess.Popen(args, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True))


def _reconciler_command() -> str:
    """How to run this reconciler from any directory: `reconciler` when PATH finds this one (an
    activated virtualenv), else the script beside this Python by its absolute path."""
    beside = Path(sys.executable).parent / "reconciler"
    on_path = shutil.which("reconciler")
    if on_path and beside.exists() and Path(on_path).resolve() == beside.resolve():
        return "reconciler"
    if beside.exists():
        return shlex.quote(str(beside))
    return f"{shlex.quote(sys.executable)} -m reconciler"


def _instructions(
    dataplanes: list[Dataplane], work: Path, settings: DemoSettings, workloads: list[str], cp_state: Path, telemetry: list[str]
) -> str:
    xds_port, api_port = settings.ports
    lines = ["", "mesh-reconciler demo is running.", ""]
    lines.append(f"  control plane  xDS 127.0.0.1:{xds_port}, API http://127.0.0.1:{api_port}/status, GUI http://127.0.0.1:{api_port}/gui")
    lines.append(f"  Kuma's API     curl http://127.0.0.1:{api_port}/meshes/default/dataplanes/_overview   (docs/api.md)")
    lines.append(f"  config repo    {work}  (a clone; `git push` goes to the watched bare repository)")
    lines.append("")
    lines.append("  sidecars and what their outbounds reach:")
    for dp in dataplanes:
        for o in dp.outbounds:
            target = o.service or (o.backend_ref[1] if o.backend_ref else "?")
            lines.append(f"    {dp.name:<16} curl http://{o.address}:{o.port}/   → {target}")
    lines.append("")
    lines.append("  workloads: " + "; ".join(workloads[:6]) + (" …" if len(workloads) > 6 else ""))
    lines.append("")
    lines += telemetry
    lines.append("")
    lines.append("  try:")
    lines.append(f"    cd {work}")
    lines.append("    $EDITOR policies/...        # change a route, a timeout, a permission")
    lines.append("    git commit -am 'try it' && git push")
    lines.append(f"    {_reconciler_command()} status --server http://127.0.0.1:{api_port}")
    # Changing what is served through the API takes the admin token, which the CLI reads from
    # the control plane's state directory.
    lines.append(
        f"    {_reconciler_command()} rollback --server http://127.0.0.1:{api_port} --state-dir {shlex.quote(str(cp_state))} HEAD~1"
    )
    lines.append(f"    {_reconciler_command()} resume --server http://127.0.0.1:{api_port} --state-dir {shlex.quote(str(cp_state))}")
    lines.append("")
    lines.append("  Ctrl-C stops everything the demo started.")
    return "\n".join(lines)


async def _serve(settings: DemoSettings, bare: Path, state: Path) -> ControlPlane:
    xds_port, api_port = settings.ports
    cp = ControlPlane(
        ServeSettings(repo=str(bare), state_dir=str(state / "control-plane"), xds_port=xds_port, api_port=api_port, poll_interval=0.5)
    )
    await cp.start()
    return cp


def _seeded_base(state: Path) -> int | None:
    try:
        text = (state / BASE_FILE).read_text().strip()
    except FileNotFoundError:
        return None  # seeded before the base was recorded: the example's own ports
    return int(text) if text.isdigit() else None


def _plan_offset(base: int | None) -> int:
    return (base or PLAN_FIRST) - PLAN_FIRST


def _settle_base(settings: DemoSettings, state: Path) -> DemoSettings:
    """A demo seeded before keeps its ports: without --base-port its base is used again; another
    base would not match the ports in its repository."""
    seeded = _seeded_base(state)
    if settings.base_port is None:
        return dataclasses.replace(settings, base_port=seeded)
    if _plan_offset(settings.base_port) != _plan_offset(seeded):
        was = f"--base-port {seeded}" if seeded else "the example's own ports"
        raise DemoNotStarted(
            f"the demo in {state} was seeded with {was}: start it the same way, or remove {state} to seed it again with --base-port {settings.base_port}"
        )
    return settings


def _check_ports(snapshot: Snapshot, settings: DemoSettings, state: Path, seeded: bool) -> None:
    xds_port, api_port = settings.ports
    taken = first_taken(planned_ports(snapshot, xds_port, api_port))
    if taken is None:
        return
    use, earlier = taken
    if earlier is not None:
        raise DemoNotStarted(
            f"port {use.port} is used twice by the demo: by {earlier.what} and by {use.what}; give one of them another port"
        )
    base = free_base()
    option = f"--base-port {base}" if base else f"--base-port N (N from 1024 to {65536 - PLAN_SPAN})"
    move = f"remove {state} and start again with {option}" if seeded else f"start again with {option}"
    hint = f" (with make: RECONCILER_DEMO_BASE_PORT={base} make run)" if base else ""
    raise DemoNotStarted(
        f"port {use.port} on {use.address} ({use.what}) is in use: stop what listens there, or move every port of the demo: {move}{hint}"
    )


def _prepare(settings: DemoSettings, state: Path, example: Path) -> tuple[DemoSettings, Path, Path, Snapshot]:
    """The repositories to serve and their configuration, after checking every port; a first
    run seeds them only once the ports are known to be free, so a taken port leaves nothing."""
    bare, work = state / "config.git", state / "work"
    if bare.exists():
        settings = _settle_base(settings, state)
        snapshot = read_directory(work)
        _check_ports(snapshot, settings, state, seeded=True)
        _prepare_clone(work)
        return settings, bare, work, snapshot
    with tempfile.TemporaryDirectory(prefix="reconciler-demo-") as scratch:
        staged = Path(scratch) / "work"
        stage_example(example, staged, settings.base_port, state / "logs")
        snapshot = read_directory(staged)
        _check_ports(snapshot, settings, state, seeded=False)
        seed_repositories(staged, state)
    if settings.base_port is not None:
        (state / BASE_FILE).write_text(f"{settings.base_port}\n")
    return settings, bare, work, snapshot


def run_demo(settings: DemoSettings) -> int:
    find_envoy()  # every sidecar is an Envoy: without one, say what to install and start nothing
    state = Path(settings.state_dir).resolve()
    example = Path(settings.example) if settings.example else example_repo_path()
    settings, bare, work, snapshot = _prepare(settings, state, example)
    (state / "envoy").mkdir(parents=True, exist_ok=True)
    dataplanes = [dataplane_from_resource(r) for r in snapshot.of_type("Dataplane")]
    # Workloads run behind sidecars only; every dataplane, builtin gateways included, gets an Envoy.
    sidecars = [dp for dp in dataplanes if not dp.gateway]
    running = _Running()

    async def main() -> None:
        cp = await _serve(settings, bare, state)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, stop.set)
        try:
            workloads = _start_workloads(sidecars, running)
            receivers, telemetry = start_telemetry(snapshot, settings.ports[1], state)
            running.receivers += receivers
            _start_envoys(dataplanes, settings, state, running)
            print(_instructions(sidecars, work, settings, workloads, state / "control-plane", telemetry), flush=True)
            await stop.wait()
        finally:
            print("\nstopping the demo", flush=True)
            await cp.stop()

    try:
        asyncio.run(main())
    finally:
        for proc in running.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in running.processes:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for server in running.servers:
            server.shutdown()
            server.server_close()
        for receiver in running.receivers:
            receiver.stop()
    return 0
