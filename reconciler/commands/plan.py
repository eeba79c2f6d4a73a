"""`reconciler plan --base A --head B`: a dry run of a pull request.

`run_plan` reads the two revisions and `plan_snapshots` computes from them a `PlanResult`
(reconciler/commands/plan_result.py): the validation of HEAD, the resource diff, every proxy
whose Envoy config or whose set of allowed clients changes (with the Envoy resources added,
removed and changed, secrets redacted), the service pairs that gain or lose the right to talk,
and what the real Envoy said about each changed proxy's full config. `plan_text`, `plan_json`
and `plan_markdown` (reconciler/commands/plan_render.py) format it; the Markdown is made to be
posted as a pull-request comment.

A plan is valid when HEAD validates and Envoy accepts every changed proxy's config.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import click

from reconciler.commands.envoy_check import EnvoyVerdict
from reconciler.commands.envoy_runs import check_with_envoy
from reconciler.commands.errors import EXIT_USAGE, RepositoryError, exit_code_of
from reconciler.commands.mesh_warnings import with_mesh_warnings
from reconciler.commands.options import compact_outbounds_option, path_option, repo_option
from reconciler.commands.plan_compute import EnvoyCheck, PlanSettings, plan_snapshots, resource_deltas
from reconciler.commands.plan_progress import envoy_progress, summary_line
from reconciler.commands.plan_result import PairChange, Plan, PlanResult, ProxyPlan, ReachChange, ResourceDelta
from reconciler.commands.read import open_source, read_snapshot
from reconciler.commands.validate import bugs_as_one_line
from reconciler.dataplane.envoy_binary import EnvoyNotFound, find_envoy
from reconciler.model import Snapshot
from reconciler.source.git import GitSource, SourceError
from reconciler.source.revisions import has_path
from reconciler.validate import validate
from reconciler.xds.resources import REDACTED, redact

__all__ = [
    "Plan",
    "PlanResult",
    "ProxyPlan",
    "ResourceDelta",
    "ReachChange",
    "PairChange",
    "EnvoyUnavailable",
    "run_plan",
    "plan_snapshots",
    "resource_deltas",
    "redact",
    "REDACTED",
    "plan_command",
]


class EnvoyUnavailable(click.ClickException):
    """No Envoy binary to validate with (exit 2: nothing was planned)."""

    exit_code = EXIT_USAGE


def run_plan(
    repo: str,
    path: str | None,
    base: str,
    head: str,
    *,
    envoy_check: bool = True,
    envoy: str | None = None,
    jobs: int | None = None,
    compact_outbounds: int | None = None,
    progress: bool = False,
) -> PlanResult:
    """Plan the change from `base` to `head` of the repository at `repo`; `compact_outbounds`
    as the server's --compact-outbounds, so that proxies get the outbound shape they would;
    with `progress`, the Envoy check's progress and summary go to stderr.

    A bug hit while reading or validating raises InternalBug (one line, exit 3); one hit while
    building HEAD is the plan's error, and one hit while building BASE a note.
    """
    source = open_source(repo, path)
    with bugs_as_one_line("reading and validating the revisions"):
        a = _read_base(source, base)
        b = read_snapshot(repo, path, head, False, source)
        report = with_mesh_warnings(b, validate(b))
        base_invalid = report.valid and not validate(a).valid
    if not report.valid:
        return PlanResult(a.revision, b.revision, report)
    settings = PlanSettings(compact_outbounds, _envoy_check(envoy, jobs, progress) if envoy_check else None)
    return plan_snapshots(a, b, report, settings, base_invalid=base_invalid)


def _envoy_check(envoy: str | None, jobs: int | None, progress: bool = False) -> EnvoyCheck:
    """The real Envoy (`--mode validate`) as the plan's check; no binary: nothing is planned.
    With `progress`, how far it is goes to stderr (reconciler/commands/plan_progress.py)."""

    def check(configs: Mapping[str, Mapping[str, Any]]) -> Mapping[str, EnvoyVerdict]:
        try:
            binary = envoy or find_envoy()
        except EnvoyNotFound as e:
            raise EnvoyUnavailable(f"{e}; or plan without it: --no-envoy-check") from None
        if not progress or not configs:
            return check_with_envoy(configs, envoy=binary, jobs=jobs).verdicts
        start = time.monotonic()
        with envoy_progress(len(configs)) as advance:
            result = check_with_envoy(configs, envoy=binary, jobs=jobs, progress=advance)
        click.echo(summary_line(result, time.monotonic() - start), err=True)
        return result.verdicts

    return check


def _read_base(source: GitSource, base: str) -> Snapshot:
    """BASE's snapshot; empty when the configured path does not exist there yet."""
    try:
        commit = source.resolve(base)
        if source.path and not has_path(commit, source.path):
            return Snapshot(str(commit.id), (), (), 0)
        return source.snapshot_of(commit)
    except SourceError as e:
        raise RepositoryError(str(e)) from None


@click.command("plan")
@repo_option("Repository (bare or with a work tree).")
@path_option()
@click.option("--base", required=True, help="Revision the change starts from (the pull request's base).")
@click.option("--head", default="HEAD", show_default=True, help="Revision to plan (the pull request's head or merge commit).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="markdown is made to be posted as a pull-request comment.",
)
@click.option(
    "--envoy-check/--no-envoy-check",
    default=True,
    show_default=True,
    help="Validate each changed proxy's full config with the real Envoy (--mode validate).",
)
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Envoy validations run in parallel (default: CPUs, at most 8).")
@compact_outbounds_option
def plan_command(
    repo: str, path: str, base: str, head: str, fmt: str, envoy_check: bool, jobs: int | None, compact_outbounds: int | None
) -> None:
    """Dry run of a change from BASE to HEAD: resources, proxies, Envoy config, who may talk to whom.

    Exit 0 when HEAD is valid and Envoy accepts every changed proxy's config, 1 otherwise
    (the reasons are printed), 2 when a revision cannot be read or Envoy cannot be found.
    The Envoy check's progress and a summary (proxies, distinct configs, Envoy runs) go to
    stderr; stdout is only the plan.
    """
    from reconciler.commands.plan_render import plan_json, plan_markdown, plan_text

    result = run_plan(repo, path, base, head, envoy_check=envoy_check, jobs=jobs, compact_outbounds=compact_outbounds, progress=True)
    show = {"json": plan_json, "markdown": plan_markdown}.get(fmt, plan_text)
    click.echo(show(result))
    raise exit_code_of(result.valid)
