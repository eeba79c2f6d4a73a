"""`reconciler demo` (what `make run` starts): the bundled example serving real traffic, a
`git push` from its work clone changing it, and Ctrl-C stopping everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.harness import REPO_ROOT, free_port, http_get, wait_until
from tests.support import git

pytestmark = pytest.mark.envoy


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


def test_demo_serves_the_example_follows_a_push_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    api = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "demo", "--state-dir", str(state), "--xds-port", str(free_port()), "--api-port", str(api)],
        cwd=REPO_ROOT,
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
        # frontend's outbound 16001 reaches backend through two sidecars (mTLS in the example mesh).
        status, body = wait_until(lambda: (r := http_get("http://127.0.0.1:16001/hello"))[0] == 200 and r, 30, 0.2, "traffic through the demo")
        assert body.startswith("backend ")
        # The work clone is a real clone: a push changes what is served.
        work = state / "work"
        before = http_get(f"http://127.0.0.1:{api}/status")[1]
        (work / "meshes").mkdir(exist_ok=True)
        (work / "meshes" / "extra.yaml").write_text("type: Mesh\nname: scratch\n")
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", "add a mesh")
        git(work, "push", "-q", "origin", "main")
        sha = git(work, "rev-parse", "HEAD").stdout.strip()
        wait_until(lambda: sha in http_get(f"http://127.0.0.1:{api}/status")[1], 20, 0.1, "the pushed commit applied")
        assert sha not in before
        started = _descendants(proc.pid)
        assert len(started) >= 5  # the Envoys and their launchers
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert proc.returncode == 0
    time.sleep(0.5)
    assert not [p for p in started if Path(f"/proc/{p}").exists() and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()], "processes left behind"
    # Nothing listens on the demo's ports any more. SO_REUSEADDR, as servers set it, lets the
    # bind pass the TIME_WAIT left by our own request but not a live listener.
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 16001))
        s.listen(1)
