"""`reconciler hook install`: refuse invalid pushes in the repository itself.

The installed `pre-receive` hook runs `reconciler hook pre-receive` with the Python interpreter
that installed it (by absolute path, so it works from a fresh shell without an activated
virtualenv). Git passes one `<old> <new> <ref>` line per updated ref on stdin; for the tracked
branch the new commit is validated, and when it is invalid the whole push is refused and the
pusher sees the same lines `reconciler validate` prints (git prefixes them with `remote:`).

- Other branches and tags are let through unchecked.
- Creating the tracked branch validates its first commit; deleting it is refused (the
  reconciler would have nothing to serve).
- Only the new tip is validated: it is what the reconciler will read. A valid tip is also
  built (mesh model and every proxy's Envoy config, with a throwaway CA), so a commit that
  would hit a bug in mesh-reconciler is refused with the one-line report the server would
  record, instead of landing and being rejected there. CA material the hook cannot see (files
  and environment variables of the control plane host) is left for the server to judge.
- With `--verify-signatures ALLOWED_SIGNERS` (and/or `--gpg-keyring FILE`) the new tip must
  also carry a signature by a trusted key, as `serve --verify-signatures` requires.

Git receives pushed objects into a quarantine directory and shows them to hooks only through
environment variables (GIT_QUARANTINE_PATH, GIT_OBJECT_DIRECTORY,
GIT_ALTERNATE_OBJECT_DIRECTORIES), which libgit2 does not read; `open_for_hook` adds those
directories to the object database so pygit2 sees the commit being pushed.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import click

from reconciler.ca.authority import CaError
from reconciler.commands.errors import RepositoryError, exit_code_of
from reconciler.commands.mesh_warnings import with_mesh_warnings
from reconciler.commands.options import branch_option, path_option, repo_option, signature_options
from reconciler.commands.validate import report_text
from reconciler.errors import escape_control
from reconciler.reconcile import Engine, InternalError
from reconciler.source.git import GitSource, SourceError, normalize_subpath, open_repository
from reconciler.source.revisions import Repository, hooks_dir, open_with_object_dirs
from reconciler.source.signatures import SignaturePolicy, SignatureSetupError, verify_commit
from reconciler.validate.bugs import describe_bug

__all__ = [
    "HOOK_MARKER",
    "RefUpdate",
    "RefVerdict",
    "Installed",
    "install_hook",
    "hook_script",
    "hooks_dir",
    "parse_updates",
    "open_for_hook",
    "check_updates",
    "hook_group",
]

HOOK_MARKER = "# installed by `reconciler hook install` (mesh-reconciler)"


@dataclass(frozen=True, slots=True)
class RefUpdate:
    old: str
    new: str
    ref: str

    @property
    def deletes(self) -> bool:
        return set(self.new) == {"0"}

    @property
    def creates(self) -> bool:
        return set(self.old) == {"0"}


@dataclass(frozen=True, slots=True)
class RefVerdict:
    """Whether one ref update may go through, and the lines to show the pusher."""

    ref: str
    accepted: bool
    lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Installed:
    path: Path
    replaced: bool
    python: str
    branch: str


# -- install --------------------------------------------------------------------------------
def hook_script(python: str, branch: str, path: str, signatures: SignaturePolicy | None = None) -> str:
    """The pre-receive script: the interpreter and settings are baked in as absolute values."""
    args = [python, "-m", "reconciler", "hook", "pre-receive", "--branch", branch]
    if path:
        args += ["--path", path]
    if signatures is not None and signatures.allowed_signers:
        args += ["--verify-signatures", signatures.allowed_signers]
    if signatures is not None and signatures.gpg_keyring:
        args += ["--gpg-keyring", signatures.gpg_keyring]
    return "\n".join(
        [
            "#!/bin/sh",
            HOOK_MARKER,
            "# Refuses pushes to the tracked branch whose configuration does not validate.",
            "# Reinstall with `reconciler hook install --force` to change it; delete this file to disable it.",
            "exec " + " ".join(shlex.quote(a) for a in args),
            "",
        ]
    )


def install_hook(
    repo: str,
    branch: str = "main",
    path: str = "",
    *,
    python: str | None = None,
    force: bool = False,
    signatures: SignaturePolicy | None = None,
) -> Installed:
    """Write the pre-receive hook into the repository at `repo`.

    An existing pre-receive hook that this command did not install is kept unless `force`.
    """
    try:
        repository = open_repository(repo)
        sub = normalize_subpath(path)
        signatures = signatures.check_setup() if signatures is not None and signatures.enabled else None
    except (SourceError, SignatureSetupError) as e:
        raise RepositoryError(str(e)) from None
    branch = branch.removeprefix("refs/heads/")
    interpreter = os.path.abspath(python or sys.executable)  # not realpath: a venv's python is a symlink that must stay one
    target = hooks_dir(repository) / "pre-receive"
    replaced = target.exists()
    if replaced and not force and HOOK_MARKER not in target.read_text(errors="replace"):
        raise RepositoryError(f"{target} exists and was not installed by reconciler; chain it yourself or pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(".pre-receive.reconciler-tmp")
    temp.write_text(hook_script(interpreter, branch, sub, signatures), encoding="utf-8")
    temp.chmod(temp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH | stat.S_IRUSR)
    temp.replace(target)
    return Installed(target, replaced, interpreter, branch)


# -- run ------------------------------------------------------------------------------------
def parse_updates(text: str) -> list[RefUpdate]:
    """Git's pre-receive input: one `<old-oid> <new-oid> <ref-name>` per line."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append(RefUpdate(*parts))
    return out


def _object_dirs(env: Mapping[str, str]) -> list[str]:
    dirs = [env.get("GIT_QUARANTINE_PATH", ""), env.get("GIT_OBJECT_DIRECTORY", "")]
    dirs += env.get("GIT_ALTERNATE_OBJECT_DIRECTORIES", "").split(os.pathsep)
    return [os.path.abspath(d) for d in dirs if d]


def open_for_hook(git_dir: str, env: Mapping[str, str] | None = None) -> Repository:
    """Open the repository a hook runs in, seeing the quarantined objects of the push."""
    env = os.environ if env is None else env
    try:
        return open_with_object_dirs(git_dir, _object_dirs(env))
    except SourceError as e:
        raise RepositoryError(str(e)) from None


def check_updates(
    repo: Repository, updates: Iterable[RefUpdate], branch: str, path: str = "", signatures: SignaturePolicy | None = None
) -> list[RefVerdict]:
    """A verdict per ref update: only the tracked branch is validated (and its tip's signature checked)."""
    tracked = "refs/heads/" + branch.removeprefix("refs/heads/")
    out = []
    engine: Engine | None = None
    for u in updates:
        if u.ref != tracked:
            out.append(RefVerdict(u.ref, True))
            continue
        if u.deletes:
            out.append(
                RefVerdict(u.ref, False, (f"mesh-reconciler: refusing to delete {tracked}: it is the branch the reconciler serves",))
            )
            continue
        if engine is None:
            engine = Engine(GitSource(repo, path))
        try:
            out.append(_check_tip(engine, repo, u, tracked, signatures))
        except SourceError as e:
            out.append(RefVerdict(u.ref, False, (f"mesh-reconciler: refusing {tracked}: {e}",)))
        except InternalError as e:
            out.append(
                RefVerdict(
                    u.ref,
                    False,
                    (
                        e.message,
                        f"mesh-reconciler: refusing {tracked}: commit {u.new[:12]} hits a bug in mesh-reconciler; the server would reject it too",
                    ),
                )
            )
        except Exception as e:  # never a traceback on the pusher's terminal
            out.append(RefVerdict(u.ref, False, (f"mesh-reconciler: refusing {tracked}: {describe_bug(e, 'checking the push')}",)))
    # The pusher's terminal shows these after `remote:`; what the push brought (names, signers)
    # must not add lines of its own there.
    return [RefVerdict(v.ref, v.accepted, tuple(map(escape_control, v.lines))) for v in out]


def _check_tip(engine: Engine, repo: Repository, u: RefUpdate, tracked: str, signatures: SignaturePolicy | None) -> RefVerdict:
    """Validate the new tip, build it when valid, and check its signature when asked."""
    evaluation = engine.evaluate(u.new)
    report = with_mesh_warnings(evaluation.snapshot, evaluation.report)
    lines = tuple(report_text(report).splitlines())
    if report.valid:
        try:
            engine.build(evaluation.snapshot, ())
        except CaError as e:  # files and variables of the control plane host are not here
            lines += (f"note: mesh CAs not checked here: {e}",)
    if report.valid and signatures is not None and signatures.enabled:
        try:
            verdict = verify_commit(repo, u.new, signatures)
        except SignatureSetupError as e:
            return RefVerdict(u.ref, False, lines + (f"mesh-reconciler: refusing {tracked}: cannot verify signatures: {e}",))
        if not verdict.trusted:
            return RefVerdict(u.ref, False, lines + (f"mesh-reconciler: refusing {tracked}: {verdict.message}",))
        lines += (f"signature: {verdict.message}",)
    if report.valid:
        return RefVerdict(u.ref, True, lines)
    short = u.new[:12]
    return RefVerdict(
        u.ref,
        False,
        lines + (f"mesh-reconciler: refusing {tracked}: commit {short} is invalid (`reconciler validate {short}` shows the same errors)",),
    )


@click.group("hook")
def hook_group() -> None:
    """A git pre-receive hook that refuses pushes of invalid configuration."""


@hook_group.command("install")
@repo_option("The (bare) repository that receives pushes.", required=True)
@branch_option("Branch whose pushes are validated; other refs pass.")
@path_option()
@click.option("--force", is_flag=True, help="Replace a pre-receive hook that reconciler did not install.")
@signature_options(
    "Also refuse a tip without an SSH signature by a key in this allowed-signers file.",
    "Also accept GPG signatures by the keys of this (binary) keyring.",
)
def hook_install(repo: str, branch: str, path: str, force: bool, allowed_signers: str | None, gpg_keyring: str | None) -> None:
    """Install the pre-receive hook into REPO (it runs this Python by absolute path)."""
    done = install_hook(repo, branch, path, force=force, signatures=SignaturePolicy(allowed_signers, gpg_keyring))
    click.echo(
        f"{'replaced' if done.replaced else 'installed'} {done.path}: pushes to refs/heads/{done.branch} are validated with {done.python}"
    )


@hook_group.command("pre-receive")
@click.option("--repo", default=None, help="Repository the hook runs in (default: $GIT_DIR, else the current directory).")
@branch_option()
@path_option(None)
@signature_options(None, None, paths=False)
def hook_pre_receive(repo: str | None, branch: str, path: str, allowed_signers: str | None, gpg_keyring: str | None) -> None:
    """Run by the installed hook: reads `<old> <new> <ref>` lines on stdin, exits 1 to refuse."""
    repository = open_for_hook(repo or os.environ.get("GIT_DIR") or ".")
    verdicts = check_updates(repository, parse_updates(sys.stdin.read()), branch, path, SignaturePolicy(allowed_signers, gpg_keyring))
    for v in verdicts:
        for line in v.lines:
            click.echo(line)
    raise exit_code_of(all(v.accepted for v in verdicts))
