"""What the deploy tests read from deploy/: manifests, the chart, Dockerfiles and the unit,
and the real CLI that parses the flags they give."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from reconciler.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MANIFESTS = DEPLOY / "kubernetes"
CHART = DEPLOY / "helm" / "mesh-reconciler"
DOCKER = DEPLOY / "docker"
SYSTEMD = DEPLOY / "systemd"
# The newest Kubernetes minor the manifests are checked against (kubernetes-validate ships it offline).
KUBERNETES_VERSION = "1.30.0"


def manifest_files() -> list[Path]:
    """Every file kustomization.yaml applies, in its order."""
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    return [MANIFESTS / name for name in kustomization["resources"]]


def load_objects(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def plain_objects() -> dict[tuple[str, str], dict[str, Any]]:
    """deploy/kubernetes' objects by (kind, name)."""
    return {(o["kind"], o["metadata"]["name"]): o for f in manifest_files() for o in load_objects(f)}


def of_kind(objects: Mapping[tuple[str, str], dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for (k, _), o in objects.items() if k == kind]
    return found


def container(deployment: Mapping[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only  # type: ignore[no-any-return]


def expand_kubernetes_vars(args: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """$(VAR) in container args, as the kubelet expands them from the container's environment."""
    return [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), a) for a in args]


def parse_command(argv: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """Parse `reconciler <argv>` with the real CLI: (subcommand, its parameters). A flag it does
    not know, a bad value or a missing required option raises click's error, as the binary would."""
    name, *rest = argv
    group_ctx = click.Context(cli, info_name="reconciler")
    command = cli.get_command(group_ctx, name)
    if command is None:
        raise click.UsageError(f"no such command {name!r}")
    with command.make_context(name, rest, parent=group_ctx) as ctx:
        return name, dict(ctx.params)


def dockerfile_instructions(path: Path) -> dict[str, str]:
    """The last value of each instruction (ENTRYPOINT, CMD, USER, ...), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    found: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found[keyword.upper()] = rest.strip()
    return found


def dockerfile_argv(path: Path) -> list[str]:
    """ENTRYPOINT followed by CMD (both exec form, JSON arrays): what the image runs by default."""
    found = dockerfile_instructions(path)
    return [*json.loads(found["ENTRYPOINT"]), *json.loads(found["CMD"])]


def unit_settings(path: Path) -> dict[str, list[str]]:
    """A systemd unit's settings, every value of each key (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def exec_start_argv(unit: Path, env: Mapping[str, str], credentials_dir: str) -> list[str]:
    """ExecStart as systemd runs it: ${VAR} from the environment file, %d the credentials directory."""
    (line,) = unit_settings(unit)["ExecStart"]
    line = line.replace("%d", credentials_dir)
    line = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env[m.group(1)], line)
    return shlex.split(line)


def env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {key: value for key, _, value in (line.partition("=") for line in lines)}


def cli_error(argv: Sequence[str]) -> str | None:
    """click's message when `reconciler <argv>` would be refused, else None."""
    try:
        parse_command(argv)
    except click.ClickException as e:
        return e.format_message()
    return None
