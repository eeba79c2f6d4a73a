"""Text output shows what came from a repository as text.

A file name (or a commit subject) holding a newline, an escape sequence or a bidi override is
shown with those characters escaped (`\\n`, `\\x1b`, `\\u202e`): it cannot forge an output line
(a fake `valid` under a refused push), drive the reader's terminal, or reorder what a reviewer
reads. JSON output keeps the exact names. Every case runs the real command on a real repository.
"""

from __future__ import annotations

import http.server
import json
import os
import pty
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import wait_until
from tests.gitops.helpers import fresh_shell_env, mesh, reconciler_cmd
from tests.security.support import LocalControlPlane
from tests.support import GitRepo, git

# A newline followed by what a forged line would say; an OSC sequence (sets the terminal's title,
# and click does not strip it from piped output); a right-to-left override.
NEWLINE = "meshes/forged\nvalid: 9 resources.yaml"
OSC = "meshes/\x1b]0;owned\x07title.yaml"
BIDI = "meshes/\u202elmay.txt.yaml"
SHOWN = {
    NEWLINE: "meshes/forged\\nvalid: 9 resources.yaml",
    OSC: "meshes/\\x1b]0;owned\\x07title.yaml",
    BIDI: "meshes/\\u202elmay.txt.yaml",
}
RAW = ("\x1b", "\x07", "\u202e")


def bad_mesh(name: str) -> str:
    return f"type: Mesh\nname: {name}\nbogus: 1\n"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(reconciler_cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def assert_shown_as_text(output: str, names: tuple[str, ...]) -> None:
    for name in names:
        assert SHOWN[name] in output, output
    assert not any(c in output for c in RAW), repr(output)
    assert not any(line.startswith("valid: 9") for line in output.splitlines()), output


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "config")
    repo.commit({"meshes/default.yaml": mesh()}, "base")
    return repo


def test_validate_prints_one_line_per_error_whatever_the_file_is_called(repo: GitRepo) -> None:
    repo.commit({name: bad_mesh(f"m{i}") for i, name in enumerate(SHOWN)}, "three bad meshes")
    done = run("validate", "--repo", str(repo.path))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4, done.stdout  # three errors and the summary
    assert_shown_as_text(done.stdout, tuple(SHOWN))
    assert f"{SHOWN[NEWLINE]}:3: Mesh m0 /bogus: unknown field" in lines[[i for i, line in enumerate(lines) if "forged" in line][0]]
    # JSON keeps the exact names: a program reading it gets the real file.
    as_json = json.loads(run("validate", "--repo", str(repo.path), "--format", "json").stdout)
    assert sorted(e["file"] for e in as_json["errors"]) == sorted(SHOWN)


def test_the_resource_list_shows_file_names_as_text(repo: GitRepo) -> None:
    repo.commit({NEWLINE: "type: Mesh\nname: other\n", OSC: "type: Mesh\nname: third\n"}, "two meshes")
    done = run("validate", "--repo", str(repo.path), "--show-resources")
    assert done.returncode == 0, done.stdout + done.stderr
    assert_shown_as_text(done.stdout, (NEWLINE, OSC))
    assert len(done.stdout.splitlines()) == 1 + 3 + 2 + 1  # header, three meshes, blank and counts, valid


def test_diff_shows_file_names_and_values_as_text(repo: GitRepo) -> None:
    base = git(repo.path, "rev-parse", "HEAD").stdout.strip()
    repo.commit(
        {OSC: "type: Mesh\nname: other\n", "meshes/default.yaml": 'type: Mesh\nname: default\nlabels:\n  note: "a\\u202eb\\u0085c"\n'},
        "add",
    )
    done = run("diff", "--repo", str(repo.path), base)
    assert done.returncode == 0, done.stderr
    assert_shown_as_text(done.stdout, (OSC,))
    assert "\\u202e" in done.stdout and "\\x85" in done.stdout and "\x85" not in done.stdout
    assert done.stdout.splitlines()[-1] == "1 added, 1 changed, 0 removed"


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_plan_shows_file_names_as_text(repo: GitRepo, fmt: str) -> None:
    base = git(repo.path, "rev-parse", "HEAD").stdout.strip()
    repo.commit({NEWLINE: "type: Mesh\nname: other\n", BIDI: "type: Mesh\nname: third\n"}, "add")
    done = run("plan", "--repo", str(repo.path), "--base", base, "--head", "HEAD", "--no-envoy-check", "--format", fmt)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_shown_as_text(done.stdout, (NEWLINE, BIDI))
    bad = repo.commit({OSC: bad_mesh("broken")}, "break")
    refused = run("plan", "--repo", str(repo.path), "--base", base, "--head", bad, "--no-envoy-check", "--format", fmt)
    assert refused.returncode == 1
    assert_shown_as_text(refused.stdout, (OSC,))


def test_a_refused_push_cannot_forge_the_hooks_reply(tmp_path: Path) -> None:
    bare, work = tmp_path / "config.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    installed = run("hook", "install", "--repo", str(bare))
    assert installed.returncode == 0, installed.stderr
    clone = GitRepo(work)
    git(work, "remote", "add", "origin", str(bare))
    clone.commit({"meshes/default.yaml": mesh(), NEWLINE: bad_mesh("m0"), OSC: bad_mesh("m1")}, "bad names")
    home = tmp_path / "home"
    home.mkdir()
    pushed = subprocess.run(
        ["git", "push", "origin", "HEAD:refs/heads/main"], cwd=work, env=fresh_shell_env(home), capture_output=True, text=True, check=False
    )
    assert pushed.returncode != 0
    shown = [line.removeprefix("remote: ") for line in pushed.stderr.splitlines() if line.startswith("remote: ")]
    assert not any(line.startswith("valid") for line in shown), pushed.stderr
    assert any(line.startswith(SHOWN[NEWLINE] + ":3:") for line in shown), pushed.stderr
    assert any(line.startswith(SHOWN[OSC] + ":3:") for line in shown), pushed.stderr
    assert "\x1b" not in pushed.stderr and "\x07" not in pushed.stderr


def test_history_shows_subjects_and_the_rejected_files_as_text(repo: GitRepo, tmp_path: Path) -> None:
    state = tmp_path / "state"
    cp = LocalControlPlane(repo.path, state, dataplane_auth="none", xds_tls="none")
    try:
        good = git(repo.path, "rev-parse", "HEAD").stdout.strip()
        cp.wait_applied(good)
        bad = repo.commit({NEWLINE: bad_mesh("m0")}, "fix\x1b]0;owned\x07 the \u202emesh")
        wait_until(lambda: bad in str(cp.cp.store.last_attempt), 20, what="the bad commit attempted")
    finally:
        cp.stop()
    done = run("history", "--repo", str(repo.path), "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    assert "fix\\x1b]0;owned\\x07 the \\u202emesh" in done.stdout
    assert_shown_as_text(done.stdout, (NEWLINE,))
    as_json = json.loads(run("history", "--repo", str(repo.path), "--state-dir", str(state), "--format", "json").stdout)
    assert as_json["commits"][0]["subject"] == "fix\x1b]0;owned\x07 the \u202emesh"


def test_status_shows_the_rejected_files_as_text(repo: GitRepo, tmp_path: Path) -> None:
    cp = LocalControlPlane(repo.path, tmp_path / "state", dataplane_auth="none", xds_tls="none")
    try:
        cp.wait_applied(git(repo.path, "rev-parse", "HEAD").stdout.strip())
        bad = repo.commit({NEWLINE: bad_mesh("m0"), OSC: bad_mesh("m1"), BIDI: bad_mesh("m2")}, "bad names")
        wait_until(lambda: bad in str(cp.cp.store.last_attempt), 20, what="the bad commit attempted")
        done = run("status", "--server", f"http://127.0.0.1:{cp.cp.api_port}")
    finally:
        cp.stop()
    assert done.returncode == 0, done.stderr
    assert_shown_as_text(done.stdout, (NEWLINE, OSC, BIDI))


def test_a_terminal_gets_no_escape_sequence_from_a_file_name(repo: GitRepo) -> None:
    # On a terminal click passes ANSI sequences through (it strips them only from pipes): this
    # one would clear the reviewer's screen.
    clear = "meshes/\x1b[2J\x1b[Hclean.yaml"
    repo.commit({clear: bad_mesh("m0")}, "clear the screen")
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        reconciler_cmd("validate", "--repo", str(repo.path)), stdin=subprocess.DEVNULL, stdout=follower, stderr=follower
    )
    os.close(follower)
    output = b"".join(_read_all(leader)).decode()
    assert proc.wait(60) == 1
    assert "meshes/\\x1b[2J\\x1b[Hclean.yaml:3: Mesh m0" in output, output
    assert "\x1b" not in output


def _read_all(fd: int) -> Iterator[bytes]:
    try:
        while chunk := os.read(fd, 4096):
            yield chunk
    except OSError:  # EIO: the other side closed
        pass
    finally:
        os.close(fd)


def test_an_error_message_quoting_a_server_answer_is_shown_as_text() -> None:
    class Hostile(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"no\x1b]0;owned\x07 such thing"
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = run("status", "--server", f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 2
    assert "no\\x1b]0;owned\\x07" in done.stderr
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr
