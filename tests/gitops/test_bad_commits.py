"""No commit breaks serving or a restart; a bug is reported as one line, never a traceback.

Real git repositories, the real `reconciler serve` process (or the in-process ControlPlane of
tests/security/support.py) and a real ADS client over gRPC. Where a test needs a bug that no
input triggers any more (every crash the fuzzer found is fixed at its root), it injects one by
replacing an internal pipeline function for the test: git, gRPC and the server stay real.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from reconciler.cli import cli
from reconciler.validate.bugs import INTERNAL_ERROR
from reconciler.xds.resources import CLUSTER, LISTENER, SECRET
from tests.e2e.harness import REPO_ROOT, ConfigRemote, ControlPlaneProcess, wait_until
from tests.gitops.helpers import fresh_shell_env, mesh, reconciler_cmd
from tests.gitops.serving import conditions, history_outcomes, read_jsonl, ref, run_cli
from tests.gitops.test_hook import Remote, remote_lines
from tests.security.support import AdsClient, LocalControlPlane, dataplane_yaml
from tests.support import GitRepo, git

EXAMPLE = REPO_ROOT / "example-repo"
GATEWAY = "gateways/edge-gateway.yaml"
NULL_CERTIFICATE = (EXAMPLE / GATEWAY).read_text().replace("- secret: edge-gateway-tls", "- null")
NULL_CERTIFICATE_ERROR = f"{GATEWAY}:27: MeshGateway default/edge-gateway /conf/listeners/1/tls/certificates/0: must be a data source (secret, file, inline or inlineString), not null"
MTLS_OOPS = "type: Mesh\nname: default\nmtls: oops\n"
MTLS_OOPS_ERROR = "meshes/default.yaml:3: Mesh default /mtls: must be a mapping or null, not a string"


def example_files() -> dict[str, str | None]:
    return {str(p.relative_to(EXAMPLE)): p.read_text() for p in EXAMPLE.rglob("*.yaml")}


def serve(root: Path, repo: Path) -> ControlPlaneProcess:
    return ControlPlaneProcess(repo, root / "state", dataplane_auth=False, xds_tls=False)


def gateway_listeners(cp_xds: str) -> list[str]:
    """The listener names an ADS client for the edge gateway gets from the control plane."""
    client = AdsClient(cp_xds)
    try:
        client.open("default.edge-gateway")
        client.wait_types(LISTENER, CLUSTER)
        return sorted(listener_pb2.Listener.FromString(any_.value).name for any_ in client.resources(LISTENER))
    finally:
        client.close()


# -- serve: a bad commit, then a restart --------------------------------------------------------
def test_commit_that_broke_serving_is_rejected_and_a_restart_serves_the_last_good(tmp_path: Path) -> None:
    remote = ConfigRemote(tmp_path)
    good = remote.push(example_files(), "the example configuration")
    cp = serve(tmp_path, remote.bare)
    cp.start()
    try:
        cp.wait_applied(good)
        served = gateway_listeners(cp.xds)
        assert any("18081" in name for name in served), served  # the HTTPS listener

        bad = remote.push({GATEWAY: NULL_CERTIFICATE}, "a null certificate")
        status = cp.wait_attempted(bad)
        assert status["lastAppliedRevision"] == f"main@sha1:{good}"
        ready = conditions(status)["Ready"]
        assert (ready["status"], ready["reason"]) == ("False", "ValidationFailed")
        assert NULL_CERTIFICATE_ERROR in ready["message"]
        assert ready["message"].endswith(f"; serving main@sha1:{good}")
    finally:
        cp.stop()

    # The restart resumes refs/reconciler/applied, then judges the branch head again: it stays up.
    cp.start()
    try:
        status = cp.wait_attempted(bad)
        assert status["lastAppliedRevision"] == f"main@sha1:{good}"
        assert NULL_CERTIFICATE_ERROR in status["lastFailure"]["message"]
        assert gateway_listeners(cp.xds) == served
        code, out = run_cli("history", "--server", cp.api, "--format", "json")
        assert code == 0, out
        assert (history_outcomes(json.loads(out))[bad], history_outcomes(json.loads(out))[good]) == ("rejected", "applied")
        assert cp.alive()
    finally:
        cp.stop()
    assert "Traceback" not in cp.output()


def test_restart_whose_applied_revision_no_longer_validates_serves_nothing_says_why_and_follows_the_branch(tmp_path: Path) -> None:
    remote = ConfigRemote(tmp_path)
    bad = remote.push({"meshes/default.yaml": MTLS_OOPS}, "mtls is not a mapping")
    # As if an older reconciler had served it: the restart must not trust the ref blindly.
    git(remote.bare, "update-ref", "refs/reconciler/applied", bad)
    cp = serve(tmp_path, remote.bare)
    cp.start()
    try:
        status = cp.wait_attempted(bad)
        assert status["lastAppliedRevision"] == ""
        ready = conditions(status)["Ready"]
        assert (ready["status"], ready["reason"]) == ("False", "ValidationFailed")
        assert MTLS_OOPS_ERROR in ready["message"]
        assert "serving" not in ready["message"]  # nothing is

        good = remote.push({"meshes/default.yaml": mesh(), "dataplanes/web.yaml": dataplane_yaml("web", "web")}, "fixed")
        cp.wait_applied(good)
        assert ref(remote.bare, "refs/reconciler/applied") == good
    finally:
        cp.stop()
    assert "Traceback" not in cp.output()


# -- serve: a bug in the pipeline ---------------------------------------------------------------
@pytest.fixture
def failing_generation(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Make generating the config of the dataplanes named in the yielded set raise (a bug),
    in the serve loop's Engine (and so the hook) and in plan."""
    import reconciler.render as render  # the one render path: the Engine, the hook and plan

    broken: set[str] = set()
    real = render.generate

    def generate(view):  # type: ignore[no-untyped-def]
        if view.dataplane.name in broken:
            raise RuntimeError("injected bug")
        return real(view)

    monkeypatch.setattr(render, "generate", generate)
    yield broken


def test_a_bug_while_generating_rejects_the_commit_once_and_the_last_good_keeps_serving(
    tmp_path: Path, failing_generation: set[str]
) -> None:
    repo = GitRepo(tmp_path / "repo")
    good = repo.commit({"mesh.yaml": "type: Mesh\nname: default\n", "web.yaml": dataplane_yaml("web", "web")})
    cp = LocalControlPlane(repo.path, tmp_path / "state", dataplane_auth="none", xds_tls="none")
    client = AdsClient(cp.target)
    try:
        cp.wait_applied(good)
        client.open("default.web")
        client.wait_types(LISTENER, CLUSTER)
        failing_generation.add("api")
        bad = repo.commit({"api.yaml": dataplane_yaml("api", "api", port=10011)}, "a second proxy")
        wait_until(lambda: cp.cp.store.last_attempt is not None and cp.cp.store.last_attempt.revision == bad, 15, what="the commit judged")
        time.sleep(1.5)  # several polls: the verdict is not retried and not recorded again

        attempt = cp.cp.store.last_attempt
        assert (attempt.outcome, attempt.cause) == ("rejected", "InternalError")
        assert attempt.message.startswith(
            f"{INTERNAL_ERROR} while generating the Envoy config of default.api: RuntimeError: injected bug at reconciler/render.py:"
        )
        assert attempt.message.endswith("; please report it")
        assert cp.applied() == good
        assert cp.cp.cache.fetch("default.web").revision == good
        assert not client.ended.is_set()
        records = [r for r in read_jsonl(tmp_path / "state" / "history.jsonl") if r.get("revision") == bad]
        assert len(records) == 1, records
        ready = conditions(cp.cp.store.status())["Ready"]
        assert (ready["status"], ready["reason"]) == ("False", "InternalError")

        # Once the bug is gone (a fixed release, a restart), the same commit applies.
        failing_generation.clear()
        fixed = repo.commit({}, "nothing new")
        cp.wait_applied(fixed)
    finally:
        client.close()
        cp.stop()


def test_a_proxy_with_only_tagless_inbounds_gets_a_certificate_without_an_identity(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    tagless = dataplane_yaml("worker", "worker").replace(
        "      tags:\n        kuma.io/service: worker\n        kuma.io/protocol: http\n", ""
    )
    sha = repo.commit({"mesh.yaml": mesh(mtls=True), "worker.yaml": tagless})
    cp = LocalControlPlane(repo.path, tmp_path / "state", dataplane_auth="none", xds_tls="none")
    client = AdsClient(cp.target)
    try:
        cp.wait_applied(sha)
        client.open("default.worker", secrets=["identity_cert:secret:default"])
        client.wait_types(LISTENER, SECRET)
        (found,) = client.resources(SECRET)
        secret = secret_pb2.Secret.FromString(found.value)
        cert = x509.load_pem_x509_certificate(secret.tls_certificate.certificate_chain.inline_bytes)
        with pytest.raises(x509.ExtensionNotFound):  # no SPIFFE id it does not have
            cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    finally:
        client.close()
        cp.stop()


# -- the pre-receive hook ---------------------------------------------------------------------------
def test_hook_refuses_a_push_that_would_have_broken_serving(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.commit(dict(example_files().items()), "the example")
    assert remote.push("HEAD:main").returncode == 0
    remote.commit({GATEWAY: NULL_CERTIFICATE}, "a null certificate")
    pushed = remote.push("HEAD:main")
    assert pushed.returncode != 0
    assert NULL_CERTIFICATE_ERROR in remote_lines(pushed.stderr)
    assert "Traceback" not in pushed.stderr


def test_hook_refuses_a_commit_that_hits_a_bug_with_one_line(tmp_path: Path, failing_generation: set[str]) -> None:
    from reconciler.commands.hook import RefUpdate, check_updates, open_for_hook

    repo = GitRepo(tmp_path / "repo")
    sha = repo.commit({"mesh.yaml": "type: Mesh\nname: default\n", "web.yaml": dataplane_yaml("web", "web")})
    failing_generation.add("web")
    (verdict,) = check_updates(open_for_hook(str(repo.path)), [RefUpdate("0" * 40, sha, "refs/heads/main")], "main")
    assert not verdict.accepted
    assert verdict.lines[0].startswith(f"{INTERNAL_ERROR} while generating the Envoy config of default.web: RuntimeError: injected bug at ")
    assert (
        verdict.lines[1]
        == f"mesh-reconciler: refusing refs/heads/main: commit {sha[:12]} hits a bug in mesh-reconciler; the server would reject it too"
    )


# -- validate and plan ---------------------------------------------------------------------------
def test_validate_reports_a_mistyped_field_at_its_line_without_a_traceback(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.write({"meshes/default.yaml": MTLS_OOPS, "services/backend.yaml": (EXAMPLE / "services/backend.yaml").read_text()})
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run(
        reconciler_cmd("validate", "--repo", str(repo.path), "--worktree"),
        cwd=REPO_ROOT,
        env=fresh_shell_env(home) | {"PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert MTLS_OOPS_ERROR in done.stdout.splitlines()
    assert done.stderr == ""


def inject_bug(monkeypatch: pytest.MonkeyPatch, module: object, name: str, error: Exception) -> None:
    """Replace `module.name` with a function that raises `error`: a bug no real input hits any more."""

    def broken(*args: object, **kwargs: object) -> object:
        raise error

    monkeypatch.setattr(module, name, broken)


def validate_worktree(tmp_path: Path, files: dict[str, str]) -> Result:
    repo = GitRepo(tmp_path / "repo")
    repo.write(files)
    return CliRunner().invoke(cli, ["validate", "--repo", str(repo.path), "--worktree"])


def test_validate_exits_3_with_one_line_when_reading_hits_a_bug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler.source.git as source_git

    inject_bug(monkeypatch, source_git, "load_file", KeyError("injected"))
    result = validate_worktree(tmp_path, {"mesh.yaml": "type: Mesh\nname: default\n"})
    assert result.exit_code == 3, result.output
    (line,) = result.output.splitlines()
    assert line.startswith(f"Error: {INTERNAL_ERROR} while validating: KeyError: 'injected' at reconciler/source/git.py:")
    assert line.endswith("; please report it")


def test_validate_exits_3_and_still_lists_every_problem_when_one_check_hits_a_bug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler.validate.pipeline as pipeline

    inject_bug(monkeypatch, pipeline, "missing_secret_problems", AttributeError("injected"))
    result = validate_worktree(tmp_path, {"mesh.yaml": "type: Mesh\nname: default\nmtls: oops\n"})
    assert result.exit_code == 3, result.output
    lines = result.output.splitlines()
    assert "mesh.yaml:3: Mesh default /mtls: must be a mapping or null, not a string" in lines
    assert any(
        line.startswith(
            f"<repository>: {INTERNAL_ERROR} while checking that Secrets exist: AttributeError: injected at reconciler/validate/pipeline.py:"
        )
        for line in lines
    ), lines


def test_plan_reports_a_bug_in_head_as_its_error(tmp_path: Path, failing_generation: set[str]) -> None:
    repo = GitRepo(tmp_path / "repo")
    base = repo.commit({"mesh.yaml": "type: Mesh\nname: default\n", "web.yaml": dataplane_yaml("web", "web")})
    head = repo.commit({"api.yaml": dataplane_yaml("api", "api", port=10011)})
    failing_generation.add("api")
    code, out = run_cli("plan", "--repo", str(repo.path), "--base", base, "--head", head, "--no-envoy-check")
    assert code == 1, out
    assert f"{INTERNAL_ERROR} while building HEAD: RuntimeError: injected bug at " in out


def test_any_command_that_hits_a_bug_prints_one_line_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The console script's last line of defence: `reconcile --out` (or any command without
    # its own) used to print a traceback.
    import reconciler.commands.reconcile_out as reconcile_out
    from reconciler.cli import main

    inject_bug(monkeypatch, reconcile_out, "render_out", IndexError("injected"))
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"mesh.yaml": "type: Mesh\nname: default\n"})
    monkeypatch.setattr(sys, "argv", ["reconciler", "reconcile", "--repo", str(repo.path), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 3
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    # The deepest frame of mesh-reconciler's own code: where the injected function was called.
    assert line.startswith(
        f"Error: {INTERNAL_ERROR} while running `reconciler reconcile`: IndexError: injected at reconciler/commands/reconcile_out.py:"
    ), line
    assert line.endswith("; please report it")
