"""Who signed a commit: SSH signatures checked with `ssh-keygen -Y`, GPG ones with `gpgv`.

Git stores a commit's signature in its `gpgsig` header; the signed payload is the commit
object without that header. Both are handed to the same tools git itself uses:

- SSH (`gpg.format=ssh`): `ssh-keygen -Y find-principals` names the principal whose key made
  the signature in an allowed-signers file (the format of `gpg.ssh.allowedSignersFile`), then
  `ssh-keygen -Y verify -n git` checks the signature for that principal, at the commit's
  committer time (so `valid-after`/`valid-before` in the file are honoured).
- GPG: `gpgv --keyring FILE` trusts exactly the keys in that keyring (a binary export:
  `gpg --export KEYID > keyring.gpg`), never the user's own keyring.

An unsigned commit, a signature by a key nobody allowed, or a signature that does not match
the commit is a rejection with a sentence that says which. Only the commit that would be
served is checked (as Flux does), not its ancestors.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pygit2

__all__ = ["SignaturePolicy", "Verdict", "verify_commit", "SignatureSetupError"]

_SSH_ARMOR = b"-----BEGIN SSH SIGNATURE-----"
_PGP_ARMOR = b"-----BEGIN PGP SIGNATURE-----"
_TIMEOUT = 20.0


class SignatureSetupError(Exception):
    """The verification cannot run at all: a missing file or tool (a usage error, not a verdict)."""


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    allowed_signers: str | None = None
    """An allowed-signers file for SSH signatures (`ssh-keygen -Y`, ALLOWED SIGNERS format)."""
    gpg_keyring: str | None = None
    """A binary OpenPGP keyring; every key in it is trusted."""

    @property
    def enabled(self) -> bool:
        return bool(self.allowed_signers or self.gpg_keyring)

    def check_setup(self) -> SignaturePolicy:
        """The same policy with absolute paths, after checking the files and tools exist."""
        signers = keyring = None
        if self.allowed_signers:
            signers = os.path.abspath(self.allowed_signers)
            if not os.path.isfile(signers):
                raise SignatureSetupError(f"allowed signers file {self.allowed_signers} does not exist")
            if shutil.which("ssh-keygen") is None:
                raise SignatureSetupError("ssh-keygen not found on PATH: it verifies SSH signatures")
        if self.gpg_keyring:
            keyring = os.path.abspath(self.gpg_keyring)
            if not os.path.isfile(keyring):
                raise SignatureSetupError(f"GPG keyring {self.gpg_keyring} does not exist")
            if shutil.which("gpgv") is None:
                raise SignatureSetupError("gpgv not found on PATH: it verifies GPG signatures (package gpgv)")
        return SignaturePolicy(signers, keyring)


@dataclass(frozen=True, slots=True)
class Verdict:
    trusted: bool
    message: str
    """`good SSH signature by alice@example.com (ED25519 SHA256:…)`, or why the commit is refused."""
    signer: str = ""


def verify_commit(repo: pygit2.Repository, revision: str, policy: SignaturePolicy) -> Verdict:
    commit = repo.revparse_single(revision).peel(pygit2.Commit)
    short = str(commit.id)[:12]
    signature, payload = commit.gpg_signature
    if not signature or payload is None:
        return Verdict(False, f"commit {short} is not signed; only commits signed by a trusted key are applied")
    if signature.lstrip().startswith(_SSH_ARMOR):
        if not policy.allowed_signers:
            return Verdict(False, f"commit {short} has an SSH signature, but no allowed signers file is configured (--verify-signatures)")
        return _verify_ssh(short, signature, payload, commit.committer.time, policy.allowed_signers)
    if signature.lstrip().startswith(_PGP_ARMOR):
        if not policy.gpg_keyring:
            return Verdict(False, f"commit {short} has a GPG signature, but no GPG keyring is configured (--gpg-keyring)")
        return _verify_gpg(short, signature, payload, policy.gpg_keyring)
    return Verdict(False, f"commit {short} has a signature of an unknown kind (neither SSH nor GPG)")


def _run(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(args, input=stdin, capture_output=True, timeout=_TIMEOUT, check=False)
    except FileNotFoundError:
        raise SignatureSetupError(f"{args[0]} not found on PATH") from None


def _verify_ssh(short: str, signature: bytes, payload: bytes, committed: int, allowed: str) -> Verdict:
    with tempfile.TemporaryDirectory(prefix="reconciler-sig-") as tmp:
        sig = Path(tmp, "commit.sig")
        sig.write_bytes(signature)
        key = _ssh_key_of(sig, payload)
        found = _run(["ssh-keygen", "-Y", "find-principals", "-s", str(sig), "-f", allowed])
        principals = [p for p in found.stdout.decode(errors="replace").splitlines() if p.strip()]
        if found.returncode != 0 or not principals:
            return Verdict(
                False, f"commit {short} is signed by an untrusted SSH key{_paren(key)}: it is not in the allowed signers file {allowed}"
            )
        when = time.strftime("%Y%m%d%H%M%S", time.gmtime(committed))
        last = ""
        for principal in principals:
            ok = _run(
                ["ssh-keygen", "-Y", "verify", "-f", allowed, "-I", principal, "-n", "git", "-s", str(sig), f"-Overify-time={when}Z"],
                stdin=payload,
            )
            if ok.returncode == 0:
                return Verdict(True, f"good SSH signature by {principal}{_paren(key)}", principal)
            lines = (ok.stderr or ok.stdout).decode(errors="replace").strip().splitlines()
            last = lines[-1] if lines else last
        return Verdict(
            False, f"commit {short}: the SSH signature{_paren(key)} does not verify for {', '.join(principals)}: {last or 'bad signature'}"
        )


def _ssh_key_of(sig: Path, payload: bytes) -> str:
    """`ED25519 SHA256:…` of the key that made the signature (not a trust decision)."""
    checked = _run(["ssh-keygen", "-Y", "check-novalidate", "-n", "git", "-s", str(sig)], stdin=payload)
    text = (checked.stdout + checked.stderr).decode(errors="replace")
    m = re.search(r"with (\S+) key (SHA256:\S+)", text)
    return f"{m.group(1)} {m.group(2)}" if m else ""


def _verify_gpg(short: str, signature: bytes, payload: bytes, keyring: str) -> Verdict:
    with tempfile.TemporaryDirectory(prefix="reconciler-gpg-") as tmp:
        os.chmod(tmp, 0o700)
        sig = Path(tmp, "commit.asc")
        data = Path(tmp, "commit.payload")
        sig.write_bytes(signature)
        data.write_bytes(payload)
        result = _run(["gpgv", "--homedir", tmp, "--status-fd", "1", "--keyring", keyring, str(sig), str(data)])
    status = result.stdout.decode(errors="replace")
    good = re.search(r"^\[GNUPG:\] GOODSIG (\S+) (.*)$", status, re.M)
    valid = re.search(r"^\[GNUPG:\] VALIDSIG (\S+)", status, re.M)
    if result.returncode == 0 and good and valid:
        return Verdict(True, f"good GPG signature by {good.group(2)} ({valid.group(1)})", good.group(2))
    missing = re.search(r"^\[GNUPG:\] (?:NO_PUBKEY|ERRSIG) (\S+)", status, re.M)
    if missing and not good:
        return Verdict(False, f"commit {short} is signed by an untrusted GPG key ({missing.group(1)}): it is not in the keyring {keyring}")
    bad = re.search(r"^\[GNUPG:\] BADSIG (\S+)", status, re.M)
    if bad:
        return Verdict(False, f"commit {short}: bad GPG signature by key {bad.group(1)} (the commit does not match it)")
    detail = result.stderr.decode(errors="replace").strip().splitlines()
    return Verdict(False, f"commit {short}: GPG signature not verified{': ' + detail[-1] if detail else ''}")


def _paren(text: str) -> str:
    return f" ({text})" if text else ""
