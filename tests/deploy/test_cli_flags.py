"""The flags deploy/ gives `reconciler` are ones the real CLI accepts, with the values the
manifests, images and unit rely on (ports, paths, the names the xDS certificate must carry)."""

from __future__ import annotations

import click
import pytest

from tests.deploy.support import (
    DOCKER,
    SYSTEMD,
    cli_error,
    container,
    dockerfile_argv,
    dockerfile_instructions,
    env_file,
    exec_start_argv,
    expand_kubernetes_vars,
    of_kind,
    parse_command,
    plain_objects,
)


def deployment_argv() -> list[str]:
    objects = plain_objects()
    c = container(of_kind(objects, "Deployment"))
    assert c.get("command") is None, "the image's ENTRYPOINT (reconciler) runs the args"
    return expand_kubernetes_vars(c["args"], of_kind(objects, "ConfigMap")["data"])


def test_the_deployment_args_parse_as_serve_and_match_its_ports_mounts_and_service() -> None:
    objects = plain_objects()
    c = container(of_kind(objects, "Deployment"))
    command, params = parse_command(deployment_argv())
    assert command == "serve"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert (params["xds_port"], params["api_port"]) == (ports["xds"], ports["api"])
    assert (params["address"], params["api_address"]) == ("0.0.0.0", "0.0.0.0")
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert params["state_dir"] == mounts["state"]
    assert params["keys_dir"] == mounts["keys"]
    assert params["git_token_file"].startswith(mounts["git-credentials"] + "/")
    config = of_kind(objects, "ConfigMap")["data"]
    assert params["repo"] == config["RECONCILER_REPOSITORY"]
    assert params["fetch_interval"] == float(config["RECONCILER_FETCH_INTERVAL"])
    # Proxies dial the Service by name: every form of that name is in the xDS certificate.
    service = of_kind(objects, "Service")["metadata"]
    short, ns = service["name"], service["namespace"]
    assert set(params["xds_tls_san"]) == {short, f"{short}.{ns}", f"{short}.{ns}.svc", f"{short}.{ns}.svc.cluster.local"}


def test_a_flag_serve_does_not_know_is_refused() -> None:
    """The check above is the CLI's own parser: a misspelt flag in a manifest would fail here."""
    assert "No such option '--fetch-intervall'" in (cli_error([*deployment_argv(), "--fetch-intervall=30"]) or "")


def test_the_control_plane_image_runs_serve_with_its_state_and_keys_where_the_manifests_mount_them() -> None:
    argv = dockerfile_argv(DOCKER / "controlplane.Dockerfile")
    assert argv[0] == "reconciler"
    command, params = parse_command(argv[1:])
    assert command == "serve"
    assert params["state_dir"] == "/var/lib/reconciler" and params["keys_dir"] == "/etc/reconciler/keys"
    assert (params["address"], params["api_address"]) == ("0.0.0.0", "0.0.0.0")
    found = dockerfile_instructions(DOCKER / "controlplane.Dockerfile")
    assert "RECONCILER_KEYS_DIR=/etc/reconciler/keys" in found["ENV"]
    assert found["EXPOSE"].split() == [str(params["xds_port"]), str(params["api_port"])]
    assert found["USER"].split(":")[0] not in ("0", "root")
    assert f"127.0.0.1:{params['api_port']}/healthz" in found["HEALTHCHECK"]


def test_the_sidecar_image_runs_run_dataplane_against_the_service(tmp_path: object) -> None:
    argv = dockerfile_argv(DOCKER / "sidecar.Dockerfile")
    assert argv[:2] == ["reconciler", "run-dataplane"]
    # Its files must exist to parse (click checks them); the path layout is what is tested.
    error = cli_error(argv[1:])
    assert error is not None and "/etc/reconciler/dataplane/" in error
    objects = plain_objects()
    service = of_kind(objects, "Service")
    cp_address = argv[argv.index("--cp-address") + 1]
    host, _, port = cp_address.rpartition(":")
    assert host == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert int(port) == next(p["port"] for p in service["spec"]["ports"] if p["name"] == "xds")
    assert dockerfile_instructions(DOCKER / "sidecar.Dockerfile")["USER"].split(":")[0] not in ("0", "root")


def test_the_sidecar_image_args_parse_once_its_files_are_mounted(tmp_path: pytest.TempPathFactory) -> None:
    argv = dockerfile_argv(DOCKER / "sidecar.Dockerfile")[1:]
    mounted = []
    for arg in argv:
        if arg.startswith("/etc/reconciler/dataplane/"):
            target = tmp_path / arg.rsplit("/", 1)[1]  # type: ignore[operator]
            target.write_text("mounted\n")
            arg = str(target)
        mounted.append(arg)
    command, params = parse_command(mounted)
    assert command == "run-dataplane"
    assert params["xds_tls"] == "verify" and params["ca_cert"] and params["dataplane_token_file"]


def test_the_systemd_unit_runs_serve_with_its_state_directory_and_credentials() -> None:
    unit = SYSTEMD / "mesh-reconciler.service"
    env = env_file(SYSTEMD / "reconciler.env.example")
    argv = exec_start_argv(unit, env, "/run/credentials/mesh-reconciler.service")
    assert argv[0].endswith("/bin/reconciler")
    command, params = parse_command(argv[1:])
    assert command == "serve"
    assert params["state_dir"] == "/var/lib/reconciler"
    assert params["repo"] == env["RECONCILER_REPOSITORY"]
    assert params["git_token_file"] == "/run/credentials/mesh-reconciler.service/git-token"
    # The API stays on loopback on a VM; xDS is for the proxies on other hosts.
    assert (params["address"], params["api_address"]) == ("0.0.0.0", "127.0.0.1")


def test_every_option_the_unit_and_images_pass_is_a_real_one() -> None:
    """Belt and braces over the parses above: each --flag is an option of its command."""
    from reconciler.cli import cli

    env = env_file(SYSTEMD / "reconciler.env.example")
    for argv in (
        deployment_argv(),
        dockerfile_argv(DOCKER / "controlplane.Dockerfile")[1:],
        dockerfile_argv(DOCKER / "sidecar.Dockerfile")[1:],
        exec_start_argv(SYSTEMD / "mesh-reconciler.service", env, "/run/credentials/x")[1:],
    ):
        command = cli.get_command(click.Context(cli), argv[0])
        assert command is not None
        known = {opt for p in command.params for opt in p.opts}
        assert {a.split("=", 1)[0] for a in argv if a.startswith("--")} <= known, argv
