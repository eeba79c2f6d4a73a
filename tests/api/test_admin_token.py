"""Calls that change what is served need the admin token; reads stay open.

`serve` writes a random token into `<state-dir>/admin-token` (mode 0600) on its first start and
keeps it across restarts. `POST /reconcile`, `/rollback` and `/resume` without it, or with a
wrong one, are refused with 401 and change nothing. The CLI's `--server` commands find the
token in `--admin-token-file`, then `$RECONCILER_ADMIN_TOKEN`, then `--state-dir`.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.api.support import TOKEN_ENV, admin_token, request, served_control_plane, token_id
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess
from tests.gitops.helpers import mesh
from tests.gitops.serving import ref, reflog, run_cli, sha_of
from tests.support import git


@dataclass
class World:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    first: str
    second: str
    off_branch: str

    @property
    def token(self) -> str:
        return admin_token(self.cp.state_dir)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("admin-token")
    with served_control_plane(root, {"meshes/default.yaml": mesh()}) as (remote, cp, first):
        second = remote.push({"meshes/other.yaml": mesh("other")}, "second")
        cp.wait_applied(second)
        # A commit on another branch only: main stays at `second`.
        git(remote.work, "checkout", "-q", "-b", "experiment")
        (remote.work / "meshes" / "third.yaml").write_text(mesh("third"))
        git(remote.work, "add", "-A")
        git(remote.work, "commit", "-q", "-m", "experiment")
        git(remote.work, "push", "-q", "origin", "HEAD:refs/heads/experiment")
        off_branch = git(remote.work, "rev-parse", "HEAD").stdout.strip()
        git(remote.work, "checkout", "-q", "main")
        yield World(remote, cp, first, second, off_branch)


def applied(cp: ControlPlaneProcess) -> str:
    status = cp.status()
    assert status is not None
    return sha_of(status["lastAppliedRevision"])


MUTATING = [("/reconcile", None), ("/rollback", {"revision": "main~1"}), ("/resume", None)]


def test_mutating_calls_without_the_right_admin_token_are_refused_and_change_nothing(world: World) -> None:
    cp = world.cp
    before = applied(cp)
    for path, body in MUTATING:
        for headers in (
            {},
            {"Authorization": "Bearer not-the-token"},
            {"Authorization": f"Basic {world.token}"},
            {"Authorization": world.token},
        ):
            reply = request(cp.api, "POST", path, body, headers=headers)
            assert reply.status == 401, (path, headers, reply)
            assert reply.headers["www-authenticate"].startswith("Bearer"), reply.headers
            message = reply.json()["error"]
            assert "Authorization: Bearer" in message and str(cp.state_dir / "admin-token") in message, message
            assert "--admin-token-file" in message and TOKEN_ENV in message, message
    assert ref(world.remote.bare, "refs/reconciler/pin") is None
    assert applied(cp) == before == world.second

    # The right token: the same calls go through.
    reply = request(cp.api, "POST", "/rollback", {"revision": "main~1"}, token=world.token)
    assert reply.status == 200, reply
    assert ref(world.remote.bare, "refs/reconciler/pin") == world.first
    assert request(cp.api, "POST", "/resume", token=world.token).status == 200
    assert ref(world.remote.bare, "refs/reconciler/pin") is None
    assert request(cp.api, "POST", "/reconcile", token=world.token).status == 200
    assert applied(cp) == world.second


def test_reads_need_no_token(world: World) -> None:
    for path in ("/status", "/status/dataplanes", "/metrics", "/history?limit=1", "/healthz", "/readyz"):
        assert request(world.cp.api, "GET", path).status == 200, path


def test_the_token_is_private_made_once_and_kept_across_restarts(tmp_path: Path) -> None:
    with served_control_plane(tmp_path, {"meshes/default.yaml": mesh()}) as (_, cp, _):
        path = cp.state_dir / "admin-token"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        token = admin_token(cp.state_dir)
        assert len(token) >= 32
        assert token not in cp.output()  # only its id is logged
        assert token_id(token) in cp.output()
        cp.stop()
        cp.start()
        assert admin_token(cp.state_dir) == token
        assert request(cp.api, "POST", "/resume", token=token).status == 200
        assert request(cp.api, "POST", "/resume", token=token + "x").status == 401


def test_a_forced_rollback_off_the_branch_records_who_asked(world: World) -> None:
    cp, token = world.cp, world.token
    reply = request(cp.api, "POST", "/rollback", {"revision": world.off_branch}, token=token)
    assert reply.status == 409 and "not on the history of main" in reply.json()["error"]
    assert ref(world.remote.bare, "refs/reconciler/pin") is None

    reply = request(cp.api, "POST", "/rollback", {"revision": world.off_branch, "force": True}, token=token)
    try:
        assert reply.status == 200, reply
        assert ref(world.remote.bare, "refs/reconciler/pin") == world.off_branch
        who = token_id(token)
        latest = reflog(world.remote.bare, "refs/reconciler/pin")[0]
        assert latest.startswith(world.off_branch) and f"token {who}" in latest and "forced" in latest, latest
        forced = [line for line in cp.output().splitlines() if "forced rollback" in line]
        assert forced and who in forced[-1] and world.off_branch[:12] in forced[-1], forced
    finally:
        assert request(cp.api, "POST", "/resume", token=token).status == 200


def test_cli_finds_the_token_in_the_file_option_then_the_environment_then_the_state_dir(world: World, tmp_path: Path) -> None:
    cp, token = world.cp, world.token
    right, wrong, empty_state = tmp_path / "right", tmp_path / "wrong", tmp_path / "empty-state"
    right.write_text(token + "\n")
    wrong.write_text("not-the-token\n")
    empty_state.mkdir()

    def resume(*options: str, env: str | None = None) -> tuple[int, str]:
        return run_cli("resume", "--server", cp.api, *options, env={TOKEN_ENV: env})

    # --admin-token-file first, over the environment and the state directory.
    assert resume("--admin-token-file", str(right), "--state-dir", str(empty_state), env="not-the-token")[0] == 0
    assert resume("--admin-token-file", str(wrong), "--state-dir", str(cp.state_dir), env=token)[0] == 2
    # Then the environment, over the state directory.
    assert resume("--state-dir", str(empty_state), env=token)[0] == 0
    assert resume("--state-dir", str(cp.state_dir), env="not-the-token")[0] == 2
    # Then the state directory the server uses.
    code, out = resume("--state-dir", str(cp.state_dir))
    assert code == 0, out
    code, out = run_cli("reconcile", "--server", cp.api, "--state-dir", str(cp.state_dir), env={TOKEN_ENV: None})
    assert code == 0, out
    code, out = run_cli("rollback", "--server", cp.api, "--state-dir", str(cp.state_dir), "main", env={TOKEN_ENV: None})
    assert code == 0, out
    assert resume("--state-dir", str(cp.state_dir))[0] == 0


def test_cli_without_the_right_token_says_so_in_one_line_and_exits_2(world: World, tmp_path: Path) -> None:
    cp = world.cp
    (tmp_path / "wrong").write_text("not-the-token\n")
    (tmp_path / "empty").write_text("\n")
    cases = {
        "missing": (["--state-dir", str(tmp_path)], "no admin token"),
        "wrong": (["--admin-token-file", str(tmp_path / "wrong")], f"refused the admin token from {tmp_path / 'wrong'}"),
        "empty file": (["--admin-token-file", str(tmp_path / "empty")], "is empty"),
        "unreadable file": (["--admin-token-file", str(tmp_path / "absent")], "cannot read"),
    }
    for case, (options, expected) in cases.items():
        for command in (["resume"], ["reconcile"], ["rollback", "main"]):
            code, out = run_cli(*command[:1], "--server", cp.api, *options, *command[1:], env={TOKEN_ENV: None})
            assert code == 2, (case, command, out)
            assert len(out.strip().splitlines()) == 1 and "Traceback" not in out, (case, out)
            assert expected in out, (case, out)
    assert ref(world.remote.bare, "refs/reconciler/pin") is None
