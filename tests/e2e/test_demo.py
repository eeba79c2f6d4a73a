"""`reconciler demo` (what `make run` starts): the bundled example serving real traffic through
real Envoys, the steps it prints (edit, `git commit -am`, `git push`) changing that traffic, a
taken port named in one line, and Ctrl-C stopping everything it started.

Every run moves the demo's ports to a free block with --base-port, so nothing else on the
machine (the example's own ports included) can make these tests fail.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import REPO_ROOT, http_get, wait_until

pytestmark = pytest.mark.envoy

BLOCK = 5000  # --base-port B puts every port of the demo in B…B+4999


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port() -> int:
    """A base whose whole block is free, in 6000-14999: apart from the ports other tests'
    free_port() hands out (30000 up to the ephemeral range, where outgoing connections take
    theirs) and the blocks the demo suggests (20000-29999 first), above the user's 5678/5681."""
    bases = list(range(6000, 15000 - BLOCK + 1, 250))
    random.shuffle(bases)
    for base in bases:
        if all(_free(p) for p in range(base, base + BLOCK)):
            return base
    raise AssertionError("no free block of 5000 ports in 6000-14999")


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _shell_env(home: Path) -> dict[str, str]:
    """A new user's shell: no virtualenv on PATH, no git identity anywhere."""
    home.mkdir(exist_ok=True)
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "GIT_CONFIG_NOSYSTEM": "1"}


@contextmanager
def running_demo(state: Path, base: int, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The demo, started as `make run` does, until it prints its instructions; Ctrl-C at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "demo", "--state-dir", str(state), "--base-port", str(base)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        output = "".join(lines)
        assert "mesh-reconciler demo is running" in output, output[-3000:]
        yield proc, output
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise


def _printed(output: str, pattern: str) -> re.Match[str]:
    found = re.search(pattern, output, re.MULTILINE)
    assert found, f"{pattern!r} not in the demo's output:\n{output}"
    return found


def _backends(url: str, n: int) -> list[str]:
    """Which backend version answered each of n requests."""
    out = []
    for _ in range(n):
        status, body = http_get(url)
        assert status == 200, body
        out.append(body.split()[1])  # "backend v1 (backend-v1) /hello"
    return out


def _telemetry_arrives_where_the_demo_says(output: str, state: Path, base: int) -> None:
    """The "where to look" lines: the access-log file in the demo's state, a Prometheus
    endpoint per sidecar (with a prometheus.yml and file_sd targets for them), and a Zipkin
    receiver. After requests through frontend the data must really be there: a JSON line per
    request in the log file, frontend's request counter on its /metrics (and the gateway's
    endpoint up), spans of one trace with the example's tag."""
    log_file = Path(_printed(output, r"^\s+access log\s+(/\S+\.log)$").group(1))
    assert log_file.parent == state / "logs"
    metrics = {
        m.group(2): m.group(1) for m in re.finditer(r"^\s+metrics\s+curl (http://127\.0\.0\.1:\d+/metrics)\s+\((\S+)\)$", output, re.M)
    }
    assert sorted(metrics) == ["backend-v1", "backend-v2", "edge-gateway", "frontend-1", "orders-1", "redis-1"]
    assert all(base <= int(u.split(":")[2].split("/")[0]) < base + BLOCK for u in metrics.values())
    config = Path(_printed(output, r"^\s+Prometheus\s+prometheus --config\.file=(\S+)").group(1))
    jobs = {j["job_name"]: j for j in yaml.safe_load(config.read_text())["scrape_configs"]}
    (targets_file,) = jobs["kuma-dataplanes"]["file_sd_configs"][0]["files"]
    groups = json.loads(Path(targets_file).read_text())
    assert {g["labels"]["dataplane"]: f"http://{g['targets'][0]}/metrics" for g in groups} == metrics
    zipkin, spans_file = _printed(output, r"^\s+traces\s+Zipkin receiver (http://127\.0\.0\.1:\d+/api/v2/spans) → (\S+)$").groups()
    assert Path(spans_file).parent == state / "traces"
    # The receiver keeps what a Zipkin client posts, in the printed file.
    posted = [{"traceId": "5af7183fb1d4cf5f", "id": "6b221d5bc9e6496c", "name": "get /check", "timestamp": 1, "duration": 2}]
    request = urllib.request.Request(zipkin, json.dumps(posted).encode(), {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 202
    assert posted[0] in _written_spans(Path(spans_file))

    frontend_url = _printed(output, r"^\s+frontend-1\s+curl (http://127\.0\.0\.1:\d+)/\s+→ backend$").group(1)
    for i in range(5):
        assert http_get(f"{frontend_url}/observed/{i}")[0] == 200
    wait_until(lambda: log_file.exists() and '"/observed/4"' in log_file.read_text(), 30, 0.2, f"frontend's call in {log_file}")
    line = json.loads(next(x for x in log_file.read_text().splitlines() if '"/observed/4"' in x))
    assert line["method"] == "GET" and line["status"] in (200, "200")

    def frontend_to_backend_requests() -> int:
        text = http_get(metrics["frontend-1"])[1]
        found = re.findall(r'^envoy_cluster_upstream_rq_total\{[^}]*envoy_cluster_name="[^"]*backend[^"]*"[^}]*\} (\d+)', text, re.M)
        return sum(int(v) for v in found)

    wait_until(lambda: frontend_to_backend_requests() >= 5, 30, 0.5, "frontend-1's request counter to backend")
    gateway = http_get(metrics["edge-gateway"])
    assert gateway[0] == 200 and re.search(r'^envoy_server_live\{[^}]*kuma_proxy_role="gateway"', gateway[1], re.M), gateway[1][:1000]

    def spans_by_trace() -> dict[str, set[str]]:
        by_trace: dict[str, set[str]] = {}
        for span in _written_spans(Path(spans_file)):
            by_trace.setdefault(span["traceId"], set()).add(f"{span['id']} {span.get('kind')}")
        return by_trace

    # A request through frontend's and backend's sidecars: a span from each, in one trace
    # (a client and a server span; with B3's shared span context they have the same id).
    wait_until(lambda: any(len(ids) >= 2 for ids in spans_by_trace().values()), 30, 0.5, f"two spans of one trace in {spans_file}")
    # The example's MeshTrace tags every span with `environment: demo`.
    spans = _written_spans(Path(spans_file))
    assert all(s.get("tags", {}).get("environment") == "demo" for s in spans if s != posted[0])


def _written_spans(spans_file: Path) -> list[Any]:
    """The spans of the file's complete lines: sidecars keep posting while the test reads, so
    the last line may still be being written."""
    text = spans_file.read_text() if spans_file.exists() else ""
    return [json.loads(line) for line in text.split("\n")[:-1] if line]


def test_demo_serves_the_example_follows_the_printed_push_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    base = free_base_port()
    state = tmp_path / "demo"
    env = _shell_env(tmp_path / "home")
    with running_demo(state, base, env) as (proc, output):
        # frontend's outbound reaches backend through two sidecars (mTLS in the example mesh),
        # 90% to v1 and 10% to v2 (policies/meshhttproute/backend-canary.yaml).
        frontend = int(_printed(output, r"^\s+frontend-1\s+curl http://127\.0\.0\.1:(\d+)/\s+→ backend$").group(1))
        assert base <= frontend < base + BLOCK
        url = f"http://127.0.0.1:{frontend}/hello"
        wait_until(lambda: http_get(url)[0] == 200, 30, 0.2, "traffic through the demo")
        assert "v1" in _backends(url, 20)
        _telemetry_arrives_where_the_demo_says(output, state, base)

        # Exactly what the demo prints: edit a file in the clone, `git commit -am`, `git push`,
        # as a new user would: the demo and these steps run in a shell with no git identity and
        # no virtualenv on PATH.
        work = Path(_printed(output, r"^\s+cd (\S+)$").group(1))
        push = _printed(output, r"^\s+(git commit -am .* && git push)$").group(1)
        status_command = _printed(output, r"^\s+(\S+ status --server http://127\.0\.0\.1:\d+)$").group(1)
        canary = work / "policies" / "meshhttproute" / "backend-canary.yaml"
        canary.write_text(canary.read_text().replace("weight: 90", "weight: 0").replace("weight: 10", "weight: 100"))
        pushed = subprocess.run(["bash", "-c", push], cwd=work, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, env=env, capture_output=True, text=True, check=True).stdout.strip()

        # The canary takes every request once the sidecars have the pushed commit.
        wait_until(lambda: set(_backends(url, 10)) == {"v2"}, 30, 0.2, "all traffic on backend v2 after the push")
        status = subprocess.run(["bash", "-c", status_command], cwd=work, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert status.returncode == 0, status.stdout + status.stderr
        assert sha in status.stdout, status.stdout

        # The printed rollback (through the API, with the admin token from the state directory)
        # brings the 90/10 canary back; the printed resume follows the branch again.
        rollback = _printed(output, r"^\s+(\S+ rollback --server http://127\.0\.0\.1:\d+ --state-dir \S+ HEAD~1)$").group(1)
        resume = _printed(output, r"^\s+(\S+ resume --server http://127\.0\.0\.1:\d+ --state-dir \S+)$").group(1)
        rolled = subprocess.run(["bash", "-c", rollback], cwd=work, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        wait_until(lambda: "v1" in _backends(url, 20), 30, 0.2, "backend v1 back after the rollback")
        resumed = subprocess.run(["bash", "-c", resume], cwd=work, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        wait_until(lambda: set(_backends(url, 10)) == {"v2"}, 30, 0.2, "all traffic on backend v2 after resume")
        started = _descendants(proc.pid)
        assert len(started) >= 5  # the Envoys and their launchers
    assert proc.returncode == 0
    time.sleep(0.5)
    assert not [p for p in started if Path(f"/proc/{p}").exists() and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()], (
        "processes left behind"
    )
    # Nothing listens on the demo's ports any more (SO_REUSEADDR lets the bind pass the
    # TIME_WAIT left by our own requests, not a live listener).
    assert _free(frontend)
    # The seeded repository holds the moved ports: another base is refused, not half-applied.
    other = base + 250
    again = subprocess.run(
        [sys.executable, "-m", "reconciler", "demo", "--state-dir", str(state), "--base-port", str(other)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 2 and "Traceback" not in again.stderr, again.stderr
    assert (
        again.stderr.strip()
        == f"Error: the demo in {state} was seeded with --base-port {base}: start it the same way, or remove {state} to seed it again with --base-port {other}"
    )


@pytest.mark.parametrize(
    "offset,what",
    [
        (678, "the control plane's xDS"),
        (1001, "frontend-1's outbound to backend"),
        (4201, "frontend-1's MeshMetric Prometheus endpoint"),
        (4411, "the demo's Zipkin receiver (MeshTrace)"),
    ],
    ids=["xds", "sidecar", "metrics", "zipkin"],
)
def test_a_taken_port_is_named_in_one_line_with_a_base_port_that_moves_them_all(tmp_path: Path, offset: int, what: str) -> None:
    base = free_base_port()
    state = tmp_path / "demo"
    port = base + offset
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past a TIME_WAIT of an earlier run
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "demo", "--state-dir", str(state), "--base-port", str(base)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"Error: port {port} on 127.0.0.1 ({what}) is in use"), lines[0]
    suggested = int(_printed(lines[0], r"--base-port (\d+)").group(1))
    assert not suggested <= port < suggested + BLOCK, "the suggested block holds the taken port"
    assert not state.exists(), "nothing is seeded before the ports are known to be free"


def test_make_clean_removes_the_demo_state(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copy(REPO_ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / ".demo" / "work").mkdir(parents=True)
    (tmp_path / ".demo" / "work" / "mesh.yaml").write_text("type: Mesh\nname: default\n")
    (tmp_path / "kept.txt").write_text("not the demo's\n")
    done = subprocess.run(["make", "clean"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (tmp_path / ".demo").exists()
    assert (tmp_path / "kept.txt").exists()
