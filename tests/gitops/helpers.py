"""Configuration builders and a static Envoy process for the GitOps tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from reconciler.dataplane.envoy_binary import find_envoy
from tests.e2e.harness import http_get, wait_until
from tests.support import ALLOW_ALL, GIT_ENV, dataplane_yaml, mesh

__all__ = ["mesh", "dataplane", "ALLOW_ALL", "deny_from", "StaticEnvoy", "fresh_shell_env", "reconciler_cmd"]


def dataplane(
    name: str, inbound_port: int, service_port: int, admin_port: int, outbounds: Mapping[str, int] | None = None, service: str | None = None
) -> str:
    """A Universal Dataplane on 127.0.0.1 with one HTTP inbound; labelled app=<service>."""
    service = service or name
    return dataplane_yaml(name, service, inbound_port, service_port, outbounds, labels={"app": service}, admin_port=admin_port)


def deny_from(source: str, destination: str) -> str:
    """A MeshTrafficPermission on the proxies labelled app=<destination> denying <source>."""
    return f"""\
type: MeshTrafficPermission
mesh: default
name: deny-{source}-to-{destination}
spec:
  targetRef:
    kind: Dataplane
    labels:
      app: {destination}
  from:
    - targetRef:
        kind: MeshSubset
        tags:
          kuma.io/service: {source}
      default:
        action: Deny
"""


def fresh_shell_env(home: Path) -> dict[str, str]:
    """What a new login shell has: no virtualenv, no PYTHONPATH, a minimal PATH."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        **{k: v for k, v in GIT_ENV.items() if k != "HOME"},
    }


def reconciler_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", *args]


class StaticEnvoy:
    """`envoy -c FILE` on a static bootstrap written by `reconcile --out`."""

    def __init__(self, config: Path, admin_port: int, log: Path) -> None:
        self.config = config
        self.admin_port = admin_port
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> StaticEnvoy:
        self.log = open(self.log_path, "ab")
        args = [find_envoy(), "-c", str(self.config), "--log-level", "info", "--use-dynamic-base-id", "--drain-time-s", "1"]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self.ready, 30, what=f"static envoy {self.config.name} ready")
        return self

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"envoy exited:\n{self.output()[-3000:]}")
        try:
            return http_get(f"http://127.0.0.1:{self.admin_port}/ready", timeout=1)[1].strip() == "LIVE"
        except OSError:
            return False

    def stats(self, prefix: str) -> dict[str, int]:
        text = http_get(f"http://127.0.0.1:{self.admin_port}/stats?filter={prefix}")[1]
        out = {}
        for line in text.splitlines():
            k, _, v = line.partition(": ")
            if v.strip().isdigit():
                out[k] = int(v)
        return out

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
