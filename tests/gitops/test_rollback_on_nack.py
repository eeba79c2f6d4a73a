"""`serve --rollback-on-nack`: a commit Envoy rejects is taken back, with real Envoys.

The rejected commit gives `web` an outbound on a port another socket holds: every field is
valid, but Envoy cannot bind the listener and NACKs the LDS response.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_until
from tests.gitops.helpers import dataplane, mesh
from tests.gitops.serving import as_admin, conditions, history_outcomes, read_jsonl, ref, run_cli
from tests.support import served_listener

pytestmark = pytest.mark.envoy


def _listeners(envoy: EnvoyProcess) -> set[str]:
    for config in envoy.config_dump()["configs"]:
        if config["@type"].endswith("ListenersConfigDump"):
            return {item["name"] for item in config.get("dynamic_listeners", []) if "active_state" in item}
    return set()


def test_commit_envoy_rejects_is_rolled_back_and_not_retried_until_the_branch_moves(tmp_path: Path) -> None:
    remote = ConfigRemote(tmp_path)
    p = {k: free_port() for k in ("web_in", "backend_in", "web_to_backend", "web_admin", "backend_admin")}
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    cp = ControlPlaneProcess(remote.bare, tmp_path / "state", extra=["--rollback-on-nack"])
    envoys: list[EnvoyProcess] = []
    with Workload("web") as web, Workload("backend") as backend:

        def files(outbounds: dict[str, int], extra: str = "") -> dict[str, str | None]:
            return {
                "meshes/default.yaml": mesh() + extra,
                "dataplanes/web.yaml": dataplane("web", p["web_in"], web.port, p["web_admin"], outbounds),
                "dataplanes/backend.yaml": dataplane("backend-1", p["backend_in"], backend.port, p["backend_admin"], service="backend"),
            }

        good = remote.push(files({"backend": p["web_to_backend"]}), "good")
        try:
            cp.start()
            for name, admin in (("web", p["web_admin"]), ("backend-1", p["backend_admin"])):
                envoys.append(EnvoyProcess(cp, tmp_path / "envoys", name=name, admin_port=admin))
                envoys[-1].start()
            cp.wait_applied(good, ["default.web", "default.backend-1"])
            web_envoy = envoys[0]
            before = _listeners(web_envoy)
            assert served_listener(f"outbound:127.0.0.1:{p['web_to_backend']}") in before

            bad = remote.push(files({"backend": p["web_to_backend"], "nowhere": taken}), "outbound on a taken port")
            code, out = run_cli("reconcile", "--server", cp.api, *as_admin(cp.state_dir), "--timeout", "20s")
            assert code == 1, out
            lines = out.splitlines()
            # Whether the watcher or this request applied it first, the answer is the same.
            assert lines[0] == f"rejected by proxies {bad[:12]}: proxies rejected main@sha1:{bad}, rolled back to main@sha1:{good}: 1 NACK"
            assert lines[1].startswith(
                f"  default.web rejected LDS: Error adding/updating listener(s) {served_listener(f'outbound:127.0.0.1:{taken}')}"
            )
            assert lines[-1] == f"serving {good[:12]}"

            # Serving is back on the good commit: status, the proxy's own config, traffic.
            status = cp.wait_applied(good, ["default.web", "default.backend-1"])
            assert status["lastAttemptedRevision"] == f"main@sha1:{bad}"
            cond = conditions(status)
            assert (cond["Ready"]["status"], cond["Ready"]["reason"]) == ("False", "ProxiesRejected")
            assert cond["Ready"]["message"].startswith(
                f"proxies rejected main@sha1:{bad}, rolled back to main@sha1:{good}: 1 NACK; first: default.web LDS: "
            )
            assert cond["Ready"]["message"].endswith(f"; serving main@sha1:{good}")
            assert (cond["Stalled"]["status"], cond["Stalled"]["reason"]) == ("True", "ProxiesRejected")
            assert status["lastFailure"]["outcome"] == "rejected-by-proxies"
            assert cp.get("/config/default/web")["revision"] == good
            assert wait_until(lambda: _listeners(web_envoy) == before, 10, what="web's listeners back to the good commit's")
            assert http_get(f"http://127.0.0.1:{p['web_to_backend']}/") == (200, "backend\n")
            assert ref(remote.bare, "refs/reconciler/applied") == good
            assert ref(remote.bare, "refs/reconciler/pin") is None  # auto rollback does not pin

            code, out = run_cli("history", "--server", cp.api, "--format", "json")
            assert code == 0, out
            outcomes = history_outcomes(json.loads(out))
            assert (outcomes[bad], outcomes[good]) == ("rejected-by-proxies", "applied")

            # Not retried: the watcher keeps polling, nothing more is pushed to web.
            lds = cp.status()["proxies"]["default.web"]["types"]["LDS"]
            time.sleep(1.5)
            again = cp.status()["proxies"]["default.web"]["types"]["LDS"]
            assert (again["pushes"], again["nack"]["count"]) == (lds["pushes"], 1)
            # Nor after a restart: the refusal is in the history log.
            cp.stop()
            cp.start()
            cp.wait_applied(good, ["default.web"])
            # Envoy asks for listeners once its clusters are warm: "synced" may come first.
            status = wait_until(
                lambda: (st := cp.status()) and "LDS" in st["proxies"]["default.web"]["types"] and st,
                10,
                what="web's LDS after the restart",
            )
            assert conditions(status)["Ready"]["reason"] == "ProxiesRejected"
            assert (
                "nack" not in status["proxies"]["default.web"]["types"]["LDS"]
                or status["proxies"]["default.web"]["types"]["LDS"]["nack"]["revision"] != bad
            )
            records = [(r["revision"], r["outcome"]) for r in read_jsonl(cp.state_dir / "history.jsonl")]
            assert records.count((bad, "rejected-by-proxies")) == 1

            # The branch moves: the next commit is applied and status is Ready again.
            fixed = remote.push(files({"backend": p["web_to_backend"]}, "# fixed\n"), "drop the outbound")
            status = cp.wait_applied(fixed, ["default.web", "default.backend-1"])
            assert conditions(status)["Ready"]["status"] == "True"
        finally:
            blocker.close()
            for envoy in envoys:
                envoy.stop()
            cp.stop()
