"""`reconciler serve` as its own process for bench/xds_scale.py (and the benches that share its
repository): started, waited for until ready, read from /proc and /metrics, stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS MiB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS"))
    return cpu, rss / 1024


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return 0, ""


class ControlPlane:
    """`reconciler serve` as its own process, from start until it is ready to serve."""

    def __init__(self, bare: Path, state: Path, log: Path) -> None:
        self.xds_port, self.api_port = free_port(), free_port()
        cmd = [sys.executable, "-m", "reconciler", "serve", "--repo", str(bare), "--state-dir", str(state)]
        cmd += ["--xds-port", str(self.xds_port), "--api-port", str(self.api_port), "--poll-interval", "1"]
        # The simulated proxies measure xDS work, not TLS handshakes or token checks.
        cmd += ["--dataplane-auth", "none", "--xds-tls", "none"]
        started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "w"), cwd=ROOT)  # noqa: SIM115
        deadline = time.monotonic() + 600
        while http_get(f"http://127.0.0.1:{self.api_port}/readyz")[0] != 200:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the control plane did not get ready; see {log}")
            time.sleep(0.1)
        self.cold_s = time.perf_counter() - started

    def phases(self) -> dict[str, float]:
        """Seconds per reconcile phase so far (sums of reconciler_reconcile_phase_duration_seconds)."""
        out = {}
        for line in http_get(f"http://127.0.0.1:{self.api_port}/metrics")[1].splitlines():
            if line.startswith("reconciler_reconcile_phase_duration_seconds_sum{"):
                phase = line.split('phase="', 1)[1].split('"', 1)[0]
                out[phase] = round(float(line.rsplit(" ", 1)[1]), 3)
        return out

    def metric(self, prefix: str) -> float:
        """The sum of every sample whose line starts with `prefix` (a name, optionally with labels)."""
        lines = http_get(f"http://127.0.0.1:{self.api_port}/metrics")[1].splitlines()
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))

    def builds(self) -> int:
        """Builds so far: reconciles and rebuilds (each observes the `generate` phase once)."""
        return int(self.metric('reconciler_reconcile_phase_duration_seconds_count{phase="generate"}'))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            print(f"the control plane did not stop within 120 s of SIGTERM; killed (pid {self.proc.pid})", file=sys.stderr)
            self.proc.kill()
            self.proc.wait()
