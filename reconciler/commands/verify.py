"""`--verify-signatures` / `--gpg-keyring` of `validate` and the pre-receive hook: who signed a commit."""

from __future__ import annotations

from reconciler.commands.errors import RepositoryError
from reconciler.source.git import GitError, SourceError, open_repository
from reconciler.source.revisions import Repository
from reconciler.source.signatures import SignaturePolicy, SignatureSetupError, Verdict, verify_commit

__all__ = ["policy_of", "check_signature"]


def policy_of(allowed_signers: str | None, gpg_keyring: str | None) -> SignaturePolicy | None:
    """The checked policy, None when neither file is given; a missing file or tool exits 2."""
    policy = SignaturePolicy(allowed_signers, gpg_keyring)
    if not policy.enabled:
        return None
    try:
        return policy.check_setup()
    except SignatureSetupError as e:
        raise RepositoryError(str(e)) from None


def check_signature(repo: str | Repository, rev: str, policy: SignaturePolicy) -> Verdict:
    try:
        repository = repo if isinstance(repo, Repository) else open_repository(repo)
        return verify_commit(repository, rev, policy)
    except (SourceError, SignatureSetupError) as e:
        raise RepositoryError(str(e)) from None
    except (KeyError, ValueError, GitError) as e:
        raise RepositoryError(f"revision {rev!r} not found: {e}") from None
