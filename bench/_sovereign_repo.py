"""Our side of bench/vs_sovereign.py: a mesh repository whose client proxy has N outbound
clusters, the commits that change it, and the client's bootstrap from `reconciler bootstrap`.

The mesh is the project's real model: N services, each a Dataplane with one inbound (its
endpoint), and one client Dataplane with an outbound to each, in the outbound shape asked for:
Kuma's (a listener per outbound, the default) or compact (one listener bound to every outbound
address).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, free_port
from tests.support import git

__all__ = ["MeshRepo"]

CLIENT = "client"
OUTBOUND_PORT_BASE = 20000


class MeshRepo:
    """A bare repository (what `serve` watches) holding N services and their client, and a clone that pushes to it."""

    def __init__(self, root: Path, n: int, port_base: int, shape: str = "kuma") -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.shape = shape
        self.remote = ConfigRemote(root)
        # Outbound addresses on a /16 of the loopback range nothing else here uses, one per service.
        self.block = random.randrange(64, 250)
        self.client_inbound = (free_port(), free_port())
        self.services = [(i, port_base + i) for i in range(n)]
        files = {"mesh.yaml": "type: Mesh\nname: default\n", self.client_path: self.client_dataplane()}
        for i, port in self.services:
            files[self.service_path(i)] = self.service_dataplane(i, port)
        self.head = self.remote.push(files, f"{n} services and their client")

    @property
    def client_path(self) -> str:
        return f"clients/{CLIENT}.yaml"

    @staticmethod
    def service_path(i: int) -> str:
        return f"services/svc-{i}.yaml"

    @staticmethod
    def service_dataplane(i: int, port: int) -> str:
        # No sidecar in front of the service: its endpoint is 127.0.0.1:<port>.
        return (
            f"type: Dataplane\nmesh: default\nname: svc-{i}\nnetworking:\n  address: 127.0.0.1\n  inbound:\n"
            f"    - port: {port}\n      servicePort: {port}\n"
            f"      tags:\n        kuma.io/service: svc-{i}\n        kuma.io/protocol: http\n"
        )

    def outbound_address(self, i: int) -> str:
        return f"127.{self.block}.{i // 250}.{i % 250 + 1}"

    def client_dataplane(self) -> str:
        port, service_port = self.client_inbound
        lines = [
            "type: Dataplane",
            "mesh: default",
            f"name: {CLIENT}",
            "labels:",
            f"  reconciler.io/outbound-shape: {self.shape}",
            "networking:",
            "  address: 127.0.0.1",
            "  inbound:",
            f"    - port: {port}",
            f"      servicePort: {service_port}",
            "      tags:",
            f"        kuma.io/service: {CLIENT}",
            "        kuma.io/protocol: http",
            "  outbound:",
        ]
        for i, _ in self.services:
            lines += [
                f"    - address: {self.outbound_address(i)}",
                f"      port: {OUTBOUND_PORT_BASE + i}",
                "      tags:",
                f"        kuma.io/service: svc-{i}",
            ]
        return "\n".join(lines) + "\n"

    def add_service(self, i: int, port: int) -> dict[str, str]:
        """The files of a commit that adds service `i` and an outbound of the client to it."""
        self.services.append((i, port))
        return {self.service_path(i): self.service_dataplane(i, port), self.client_path: self.client_dataplane()}

    def push(self, files: dict[str, str], message: str) -> str:
        """Commit `files`, then `git push`: the change reaches the server when this returns."""
        work = self.remote.work
        for rel, content in files.items():
            (work / rel).write_text(content)
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", message)
        git(work, "push", "-q", "origin", f"HEAD:refs/heads/{self.remote.branch}")
        self.head = git(work, "rev-parse", "HEAD").stdout.strip()
        return self.head

    def bootstrap(self, cp: ControlPlaneProcess, admin_port: int, xds_mode: str = "sotw") -> dict[str, Any]:
        """The client's bootstrap, as `reconciler bootstrap` prints it (plaintext xDS, no token)."""
        args = [sys.executable, "-m", "reconciler", "bootstrap", "--cp-address", cp.xds, "--api-address", cp.api]
        args += ["--mesh", "default", "--name", CLIENT, "--admin-port", str(admin_port), "--xds-tls", "none", "--xds-mode", xds_mode]
        result = subprocess.run(args, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
        return json.loads(result.stdout)  # type: ignore[no-any-return]
