"""Helpers for the GitOps tests that run `serve`: the CLI in-process, refs of a bare repository,
and signed commits made with the real `git` and `ssh-keygen`."""

from __future__ import annotations

import json
import subprocess
import urllib.error
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from reconciler.cli import cli
from tests.e2e.harness import ConfigRemote, http_get
from tests.support import git

__all__ = [
    "run_cli",
    "as_admin",
    "ref",
    "reflog",
    "conditions",
    "sha_of",
    "refused",
    "SigningClone",
    "ssh_key",
    "allowed_signers",
    "history_outcomes",
    "read_jsonl",
]


def run_cli(*args: str, env: Mapping[str, str | None] | None = None) -> tuple[int, str]:
    """The CLI in this process; `env` sets (None: unsets) environment variables for the call."""
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def as_admin(state_dir: Path) -> tuple[str, ...]:
    """Options of a `--server` command that change what is served: the admin token of the
    server whose state directory is `state_dir`."""
    return ("--state-dir", str(state_dir))


def ref(bare: Path, name: str) -> str | None:
    out = git(bare, "rev-parse", "--verify", "-q", name, check=False)
    return out.stdout.strip() or None


def reflog(bare: Path, name: str) -> list[str]:
    """`git log -g` subjects of a ref's reflog, newest first."""
    return git(bare, "log", "-g", "--format=%H %gs", name).stdout.splitlines()


def conditions(status: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    return {c["type"]: c for c in status["conditions"]}


def sha_of(revision: str) -> str:
    return revision.rpartition(":")[2]


def refused(url: str) -> bool:
    """Nothing listens there any more (the connection is refused or reset)."""
    try:
        http_get(url, timeout=2)
    except (urllib.error.URLError, ConnectionError, OSError):
        return True
    return False


def history_outcomes(doc: Mapping[str, Any]) -> dict[str, str]:
    return {c["revision"]: c["outcome"] for c in doc["commits"]}


def ssh_key(directory: Path, name: str) -> Path:
    """A fresh ed25519 key pair made by ssh-keygen; returns the private key's path."""
    key = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def allowed_signers(path: Path, principals: Mapping[str, Path]) -> Path:
    """An allowed-signers file trusting each principal's key for git signatures."""
    lines = [f'{who} namespaces="git" {Path(str(key) + ".pub").read_text().strip()}' for who, key in principals.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class SigningClone(ConfigRemote):
    """A ConfigRemote whose commits can be signed with an SSH key (git's gpg.format=ssh)."""

    def commit_signed(self, files: Mapping[str, str | None], message: str, key: Path | None) -> str:
        for rel, content in files.items():
            target = self.work / rel
            if content is None:
                target.unlink(missing_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
        git(self.work, "add", "-A")
        signing = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"] if key else ["-c", "commit.gpgsign=false"]
        git(self.work, *signing, "commit", "-q", "--allow-empty", *(["-S"] if key else []), "-m", message)
        return git(self.work, "rev-parse", "HEAD").stdout.strip()

    def push_signed(self, files: Mapping[str, str | None], message: str, key: Path | None) -> str:
        sha = self.commit_signed(files, message, key)
        result = git(self.work, "push", "-q", "origin", f"HEAD:refs/heads/{self.branch}", check=False)
        if result.returncode != 0:
            raise AssertionError(f"git push failed: {result.stderr}")
        return sha


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
