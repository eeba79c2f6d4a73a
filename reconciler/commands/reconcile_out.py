"""`reconciler reconcile --out DIR`: every proxy's Envoy config as a static bootstrap file.

One file per dataplane, `DIR/<mesh>.<name>.yaml`, that a real Envoy loads with `envoy -c FILE`:
admin on the dataplane's admin port, listeners, routes, clusters, endpoints and secrets all
static (see reconciler.xds.static). For static Envoy deployments and for CI.

Files are replaced atomically. A manifest (`DIR/.reconciler-out.json`) lists what the last
render wrote, so files of dataplanes that no longer exist are removed and nothing else in DIR
is touched. Files holding secrets are written readable by the owner only.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click

from reconciler.ca.authority import CaError
from reconciler.ca.provider import CertificateProvider
from reconciler.ca.store import CaStore
from reconciler.commands.envoy_check import EnvoyVerdict, validate_with_envoy
from reconciler.commands.errors import CommandExit, InvalidConfig, RepositoryError, exit_code_of
from reconciler.commands.options import (
    admin_token_file_option,
    compact_outbounds_option,
    format_option,
    path_option,
    repo_option,
    server_option,
    state_dir_option,
    timeout_option,
)
from reconciler.commands.read import read_snapshot
from reconciler.commands.validate import report_text
from reconciler.dataplane.envoy_binary import EnvoyNotFound
from reconciler.mesh.model import build_mesh_model
from reconciler.render import render
from reconciler.validate import Report, validate
from reconciler.xds.resources import SECRET
from reconciler.xds.static import static_bootstrap_for, to_yaml

__all__ = ["Rendered", "RenderResult", "render_out", "render_text", "render_json", "MANIFEST", "reconcile_command"]

MANIFEST = ".reconciler-out.json"


@dataclass(frozen=True, slots=True)
class Rendered:
    node_id: str
    path: Path
    listeners: int
    clusters: int
    secrets: int
    envoy: EnvoyVerdict | None = None


@dataclass(frozen=True, slots=True)
class RenderResult:
    revision: str | None
    out_dir: Path
    report: Report
    files: tuple[Rendered, ...] = ()
    removed: tuple[Path, ...] = ()

    @property
    def ok(self) -> bool:
        return self.report.valid and all(f.envoy is None or f.envoy.ok for f in self.files)


def render_out(
    repo: str,
    path: str | None,
    rev: str | None,
    out_dir: str | os.PathLike[str],
    *,
    state_dir: str | os.PathLike[str] | None = None,
    check: bool = False,
    envoy: str | None = None,
    jobs: int | None = None,
    compact_outbounds: int | None = None,
) -> RenderResult:
    """Validate `rev`, then write one static Envoy bootstrap per dataplane into `out_dir`.

    Nothing is written when the revision does not validate. Builtin mesh CAs come from
    `state_dir` (the one `serve` uses; created there when missing), or live in memory for this
    render when it is None. With `check`, the real Envoy validates each written file.
    """
    snapshot = read_snapshot(repo, path, rev, False)
    report = validate(snapshot)
    out = Path(out_dir)
    if not report.valid:
        return RenderResult(snapshot.revision, out, report)
    certs = CertificateProvider(CaStore(state_dir) if state_dir is not None else None)
    try:
        rendering = render(build_mesh_model(snapshot.resources), certs, compact_outbounds)
    except CaError as e:
        raise InvalidConfig(f"cannot issue certificates: {e}") from None
    views = rendering.views
    configs = {}
    counts = {}
    for node_id in sorted(views):
        resources = rendering.resources[node_id]
        configs[node_id] = static_bootstrap_for(views[node_id], resources)
        static = configs[node_id]["staticResources"]
        counts[node_id] = (len(static["listeners"]), len(static["clusters"]), len(resources.of(SECRET)))
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for node_id, config in configs.items():
        target = out / f"{node_id}.yaml"
        _write_atomic(target, to_yaml(config), private=counts[node_id][2] > 0)
        written[node_id] = target
    removed = _remove_stale(out, {p.name for p in written.values()})
    _write_atomic(
        out / MANIFEST,
        json.dumps({"revision": snapshot.revision, "files": sorted(p.name for p in written.values())}, indent=2) + "\n",
        private=False,
    )
    verdicts: dict[str, EnvoyVerdict] = {}
    if check:
        try:
            verdicts = validate_with_envoy(configs, envoy=envoy, jobs=jobs)
        except EnvoyNotFound as e:
            raise RepositoryError(str(e)) from None
    files = tuple(Rendered(n, written[n], *counts[n], verdicts.get(n)) for n in configs)
    return RenderResult(snapshot.revision, out, report, files, removed)


def _write_atomic(target: Path, text: str, *, private: bool) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(temp, 0o600 if private else 0o644)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _remove_stale(out: Path, keep: set[str]) -> tuple[Path, ...]:
    """Files the previous render wrote that this one did not (only names from its manifest)."""
    try:
        previous = json.loads((out / MANIFEST).read_text(encoding="utf-8")).get("files") or []
    except (OSError, ValueError):
        return ()
    removed = []
    for name in previous:
        if not isinstance(name, str) or name in keep or "/" in name or name.startswith("."):
            continue
        stale = out / name
        if stale.is_file():
            stale.unlink()
            removed.append(stale)
    return tuple(removed)


def render_text(result: RenderResult) -> str:
    """One line per file, then a summary; for an invalid revision what `validate` prints."""
    if not result.report.valid:
        return report_text(result.report)
    lines = []
    for f in result.files:
        verdict = "" if f.envoy is None else ("  envoy: OK" if f.envoy.ok else f"  envoy: REJECTED: {f.envoy.message}")
        secrets = f", {f.secrets} secrets" if f.secrets else ""
        lines.append(f"{f.node_id:<32} {f.path}  ({f.listeners} listeners, {f.clusters} clusters{secrets}){verdict}")
    lines += [f"removed {p} (its dataplane is gone)" for p in result.removed]
    noun = "proxy" if len(result.files) == 1 else "proxies"
    lines.append(f"rendered {len(result.files)} {noun} at revision {(result.revision or '')[:12]} into {result.out_dir}")
    return "\n".join(lines)


def render_json(result: RenderResult) -> str:
    files = []
    for f in result.files:
        item: dict[str, object] = {
            "node": f.node_id,
            "path": str(f.path),
            "listeners": f.listeners,
            "clusters": f.clusters,
            "secrets": f.secrets,
        }
        if f.envoy is not None:
            item["envoy"] = {"ok": f.envoy.ok, "message": f.envoy.message}
        files.append(item)
    doc = {
        "revision": result.revision,
        "valid": result.report.valid,
        "errors": [p.to_json() for p in result.report.errors],
        "files": files,
        "removed": [str(p) for p in result.removed],
    }
    return json.dumps(doc, indent=2)


@click.command("reconcile")
@repo_option("Repository (bare or with a work tree); default: the current directory.", default=None)
@click.option("--rev", default=None, help="Revision to render (default HEAD).")
@path_option()
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Write one static Envoy bootstrap per dataplane here (<mesh>.<name>.yaml)."
)
@state_dir_option(
    "Take builtin mesh CAs from this state directory (the one `serve` uses); default: a throwaway CA. With --server: where the admin token is (default .reconciler).",
    default=None,
)
@click.option("--check", is_flag=True, help="Also validate each written file with the real Envoy (--mode validate).")
@server_option("Instead: ask the running server at this HTTP API URL to fetch and reconcile now.")
@admin_token_file_option
@timeout_option
@format_option
@compact_outbounds_option
def reconcile_command(
    repo: str | None,
    rev: str | None,
    path: str,
    out_dir: str | None,
    state_dir: str | None,
    check: bool,
    server: str | None,
    admin_token_file: str | None,
    timeout: str,
    fmt: str,
    compact_outbounds: int | None,
) -> None:
    """One-shot reconcile: with --server URL, a running server reconciles now and this waits for
    the proxies; with --out DIR, every proxy's Envoy config is rendered without a server.

    --server: exit 0 applied and ACKed by every connected proxy, 1 rejected or NACKed (the
    errors and NACK messages are printed), 2 server unreachable, admin token refused, or timeout.
    --out: exit 0 when written, 1 when the revision is invalid (nothing is written) or Envoy
    rejects a file (with --check), 2 on usage or repository errors.
    """
    if server and (out_dir or repo or rev or check or path):
        raise click.UsageError("--server asks a running server; --repo, --rev, --path, --out and --check are for rendering without one")
    if admin_token_file and not server:
        raise click.UsageError("--admin-token-file is for --server")
    if server:
        from reconciler.commands.rollout import act, admin_token, parse_timeout, result_json, result_text

        outcome = act(server, "reconcile", parse_timeout(timeout), token=admin_token(admin_token_file, state_dir))
        click.echo(result_json(outcome) if fmt == "json" else result_text(outcome))
        raise CommandExit(outcome.exit_code)
    if not out_dir:
        raise click.UsageError(
            "missing option '--out' DIR (render the static Envoy configs without a server), or give --server URL (reconcile a running server now)"
        )
    result = render_out(repo or ".", path, rev, out_dir, state_dir=state_dir, check=check, compact_outbounds=compact_outbounds)
    click.echo(render_json(result) if fmt == "json" else render_text(result))
    raise exit_code_of(result.ok)
