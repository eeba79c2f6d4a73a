"""`reconciler token`, and how `bootstrap` / `run-dataplane` present a token and check the
control plane's certificate (the bootstrap Envoy gets)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from reconciler.ca.signing_keys import SigningKeys
from reconciler.ca.tokens import decode_unverified, verify_token
from reconciler.ca.xds_tls import ca_cert_path, default_names, load_or_create
from reconciler.cli import cli


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_token_issue_prints_a_token_the_control_plane_verifies(tmp_path: Path) -> None:
    result = run("token", "issue", "--state-dir", str(tmp_path), "--mesh", "demo", "--name", "web-1", "--valid-for", "2h")
    assert result.exit_code == 0, result.output
    assert f"note: no signing key in {tmp_path}: created one" in result.stderr
    claims = verify_token(result.stdout.strip(), SigningKeys.open(tmp_path))
    assert (claims.mesh, claims.name, claims.expires_at - claims.issued_at) == ("demo", "web-1", 2 * 3600 + 5)
    assert stat.S_IMODE((tmp_path / "dataplane-tokens" / "1.pem").stat().st_mode) == 0o600


def test_token_issue_binds_to_tags_in_kumas_multi_value_form(tmp_path: Path) -> None:
    result = run("token", "issue", "--state-dir", str(tmp_path), "--tags", "kuma.io/service=web,web-api,version=v1")
    assert result.exit_code == 0, result.output
    claims = decode_unverified(result.stdout)[1]
    assert (claims.mesh, claims.name, dict(claims.tags)) == ("default", "", {"kuma.io/service": ("web", "web-api"), "version": ("v1",)})


def test_token_issue_writes_a_private_file(tmp_path: Path) -> None:
    out = tmp_path / "web.token"
    result = run("token", "issue", "--state-dir", str(tmp_path / "state"), "--name", "web", "-o", str(out))
    assert (result.exit_code, result.stdout) == (0, "")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert decode_unverified(out.read_text())[1].name == "web"


def test_token_issue_usage_errors_exit_2(tmp_path: Path) -> None:
    for args, message in [
        ([], "give --name (one dataplane) or --tags"),
        (["--name", "web", "--valid-for", "forever"], 'invalid duration "forever"'),
        (["--tags", "web"], 'invalid tag "web"'),
        (["--name", "web", "--valid-for", "9" * 30 + "d"], "validity too long: a token must expire by 9999-12-31T23:59:59Z"),
    ]:
        result = run("token", "issue", "--state-dir", str(tmp_path), *args)
        assert result.exit_code == 2, result.output
        assert message in result.output


def test_token_issue_binds_to_a_workload_and_inspect_shows_it(tmp_path: Path) -> None:
    # A dataplane whose SPIFFE id a MeshIdentity makes from its kuma.io/workload label is only
    # admitted with a token bound to that workload (tests/security/test_identity_binding.py).
    token = run("token", "issue", "--state-dir", str(tmp_path), "--tags", "kuma.io/service=orders", "--workload", "orders").stdout.strip()
    claims = verify_token(token, SigningKeys.open(tmp_path))
    assert (claims.workload, dict(claims.tags)) == ("orders", {"kuma.io/service": ("orders",)})
    assert "workload:  orders" in run("token", "inspect", token).stdout.splitlines()


def test_token_inspect_shows_the_id_to_revoke_and_verifies_with_the_state_dir(tmp_path: Path) -> None:
    token = run("token", "issue", "--state-dir", str(tmp_path), "--name", "web").stdout.strip()
    token_id = decode_unverified(token)[1].token_id
    result = run("token", "inspect", "--state-dir", str(tmp_path), token)
    assert result.exit_code == 0, result.output
    assert f"id:        {token_id}" in result.output
    assert "verified:  valid" in result.output
    assert "revoke by adding the id to Secret dataplane-token-revocations-default in mesh default" in result.output
    doc = json.loads(run("token", "inspect", "--format", "json", token).output)
    assert (doc["id"], doc["name"], "verified" in doc) == (token_id, "web", False)
    assert run("token", "inspect", "garbage").exit_code == 1


def _dataplane_file(tmp_path: Path) -> str:
    dp = tmp_path / "dp.yaml"
    dp.write_text(
        "type: Dataplane\nmesh: default\nname: web\nnetworking:\n  address: 127.0.0.1\n  inbound:\n    - port: 10001\n      servicePort: 8080\n      tags:\n        kuma.io/service: web\n"
    )
    return str(dp)


def _bootstrap(tmp_path: Path, *extra: str, cp_address: str = "127.0.0.1:5678") -> Result:
    return run("bootstrap", "--cp-address", cp_address, "--dataplane-file", _dataplane_file(tmp_path), *extra)


def _ads_tls(config: dict[str, Any]) -> dict[str, Any] | None:
    (cluster,) = config["static_resources"]["clusters"]
    socket = cluster.get("transport_socket")
    return socket["typed_config"] if socket else None


def test_bootstrap_presents_the_token_and_verifies_the_control_plane_by_its_ca(tmp_path: Path) -> None:
    load_or_create(tmp_path / "state", default_names("127.0.0.1"))
    token_file = tmp_path / "token"
    run("token", "issue", "--state-dir", str(tmp_path / "state"), "--name", "web", "-o", str(token_file))
    result = _bootstrap(tmp_path, "--dataplane-token-file", str(token_file), "--ca-cert", str(ca_cert_path(tmp_path / "state")))
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)
    assert config["node"]["metadata"]["dataplane.token"] == token_file.read_text().strip()
    tls = _ads_tls(config)
    assert tls is not None
    assert tls["@type"] == "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    assert "sni" not in tls  # an IP address is not a server name
    validation = tls["common_tls_context"]["validation_context"]
    assert validation["trusted_ca"] == {"inline_string": ca_cert_path(tmp_path / "state").read_text()}
    assert {m["san_type"] for m in validation["match_typed_subject_alt_names"]} == {"DNS", "IP_ADDRESS"}
    assert {m["matcher"]["exact"] for m in validation["match_typed_subject_alt_names"]} == {"127.0.0.1"}


def test_bootstrap_needs_a_ca_cert_unless_told_plaintext(tmp_path: Path) -> None:
    result = _bootstrap(tmp_path)
    assert result.exit_code == 2
    assert "the control plane serves xDS over TLS: give --ca-cert FILE" in result.output
    plaintext = _bootstrap(tmp_path, "--xds-tls", "none")
    assert plaintext.exit_code == 0, plaintext.output
    assert _ads_tls(json.loads(plaintext.output)) is None
    not_a_cert = tmp_path / "bad.crt"
    not_a_cert.write_text("hello")
    assert "not a PEM certificate" in _bootstrap(tmp_path, "--ca-cert", str(not_a_cert)).output


def test_bootstrap_sends_sni_for_a_host_name(tmp_path: Path) -> None:
    load_or_create(tmp_path / "state", default_names("127.0.0.1"))
    result = _bootstrap(tmp_path, "--ca-cert", str(ca_cert_path(tmp_path / "state")), cp_address="cp.example:5678")
    tls = _ads_tls(json.loads(result.output))
    assert tls is not None and tls["sni"] == "cp.example"


def test_serve_defaults_to_tls_and_token_auth_like_kuma() -> None:
    from reconciler.controlplane import ServeSettings

    serve = cli.commands["serve"]
    defaults = {p.name: p.default for p in serve.params}
    assert (defaults["dataplane_auth"], defaults["xds_tls"]) == ("dpToken", "builtin")
    settings = ServeSettings(repo=".")
    assert (settings.dataplane_auth, settings.xds_tls) == ("dpToken", "builtin")


def test_rotate_key_signs_new_tokens_with_the_next_key_and_keeps_old_ones_valid(tmp_path: Path) -> None:
    old = run("token", "issue", "--state-dir", str(tmp_path), "--name", "web").stdout.strip()
    result = run("token", "rotate-key", "--state-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("signing key 2 created in ")
    new = run("token", "issue", "--state-dir", str(tmp_path), "--name", "web").stdout.strip()
    keys = SigningKeys.open(tmp_path)
    assert (verify_token(old, keys).key_id, verify_token(new, keys).key_id) == ("1", "2")
