"""`reconciler demo`: the whole loop on one machine, from example-repo/ to live traffic.

Creates a bare repository seeded from the bundled example (plus a work clone to edit and
push from), starts the control plane, one small HTTP (or TCP echo) workload per inbound of
every Dataplane, and an Envoy sidecar per Dataplane, all on 127.0.0.1. Ctrl-C stops
everything it started.
"""

from __future__ import annotations

import asyncio
import http.server
import logging
import os
import shutil
import signal
import socketserver
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.ca.tokens import SigningKeys, issue_token
from reconciler.ca.xds_tls import ca_cert_path
from reconciler.controlplane import ControlPlane, ServeSettings
from reconciler.dataplane.envoy_binary import find_envoy
from reconciler.mesh.model import Dataplane, dataplane_from_resource
from reconciler.source.git import read_directory

__all__ = ["DemoSettings", "run_demo", "example_repo_path"]

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
    xds_port: int = 5678
    api_port: int = 5681
    envoy_log_level: str = "warning"


@dataclass
class _Running:
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    servers: list[socketserver.BaseServer] = field(default_factory=list)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env={**os.environ, **GIT_IDENTITY})


def seed_repositories(example: Path, state: Path) -> tuple[Path, Path]:
    """A bare repository holding the example as its first commit, and a clone to work in."""
    bare, work = state / "config.git", state / "work"
    if bare.exists():
        return bare, work
    state.mkdir(parents=True, exist_ok=True)
    _git(state, "init", "-q", "--bare", "-b", "main", str(bare))
    shutil.copytree(example, work, ignore=shutil.ignore_patterns(".git"))
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "Seed from example-repo")
    _git(work, "remote", "add", "origin", str(bare))
    _git(work, "push", "-q", "origin", "main")
    return bare, work


class _Workload(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    identity = "workload"

    def do_GET(self) -> None:  # noqa: N802
        body = f"{self.identity} {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # noqa: N815

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
            sys.executable, "-m", "reconciler", "run-dataplane",
            "--cp-address", f"127.0.0.1:{settings.xds_port}",
            "--mesh", dp.mesh, "--name", dp.name,
            "--admin-port", str(dp.admin_port),
            "--work-dir", str(state / "envoy" / dp.name),
            "--log-level", settings.envoy_log_level,
            "--dataplane-token-file", str(token_file),
            "--ca-cert", str(ca_cert_path(cp_state)),
        ]
        logfile = open(state / "envoy" / f"{dp.name}.log", "ab")
        running.processes.append(subprocess.Popen(args, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True))


def _instructions(dataplanes: list[Dataplane], work: Path, settings: DemoSettings, workloads: list[str]) -> str:
    lines = ["", "mesh-reconciler demo is running.", ""]
    lines.append(f"  control plane  xDS 127.0.0.1:{settings.xds_port}, API http://127.0.0.1:{settings.api_port}/status")
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
    lines.append("  try:")
    lines.append(f"    cd {work}")
    lines.append("    $EDITOR policies/...        # change a route, a timeout, a permission")
    lines.append("    git commit -am 'try it' && git push")
    lines.append(f"    reconciler status --server http://127.0.0.1:{settings.api_port}")
    lines.append("")
    lines.append("  Ctrl-C stops everything the demo started.")
    return "\n".join(lines)


async def _serve(settings: DemoSettings, bare: Path, state: Path) -> ControlPlane:
    cp = ControlPlane(ServeSettings(repo=str(bare), state_dir=str(state / "control-plane"), xds_port=settings.xds_port, api_port=settings.api_port, poll_interval=0.5))
    await cp.start()
    return cp


def run_demo(settings: DemoSettings) -> int:
    find_envoy()  # every sidecar is an Envoy: without one, say what to install and start nothing
    state = Path(settings.state_dir).resolve()
    example = Path(settings.example) if settings.example else example_repo_path()
    bare, work = seed_repositories(example, state)
    (state / "envoy").mkdir(parents=True, exist_ok=True)
    snapshot = read_directory(work)
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
            _start_envoys(dataplanes, settings, state, running)
            print(_instructions(sidecars, work, settings, workloads), flush=True)
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
    return 0
