"""What `POST /rollback` accepts as a revision, checked before any git or regex work.

A commit id (4 to 64 hex digits, short or full, SHA-1 or SHA-256) or a ref name, optionally
followed by git's ancestry suffixes `~N` and `^N` (`main~1`, `HEAD^2~3`), at most 256
characters. Ref names follow `git check-ref-format` (one-level names like `main` allowed, as
rev-parse takes them). Everything else — reflog selectors `main@{1}`, peeling `^{tree}`,
`rev:path`, ranges — is refused: a rollback names a commit, and a bounded, plain string keeps
libgit2's parser and the redaction of error messages cheap.

Each check is a scan of the string; no regex, so nothing here is slower than linear.
"""

from __future__ import annotations

__all__ = ["MAX_REVISION", "revision_problem"]

MAX_REVISION = 256

_HEX = frozenset("0123456789abcdefABCDEF")
_SUFFIX = frozenset("~^0123456789")
_FORBIDDEN = {" ": "a space", "~": "'~'", "^": "'^'", ":": "':'", "?": "'?'", "*": "'*'", "[": "'['", "\\": "'\\'"}


def revision_problem(revision: str) -> str | None:
    """None when `revision` is a commit id or ref name (with ~N/^N), else what is wrong with it."""
    if not revision:
        return "the revision is empty: give a commit id or a ref name"
    if len(revision) > MAX_REVISION:
        return f"the revision is {len(revision)} characters long; at most {MAX_REVISION} (a commit id or a ref name)"
    cut = min((i for i in (revision.find("~"), revision.find("^")) if i >= 0), default=len(revision))
    base, suffix = revision[:cut], revision[cut:]
    shown = repr(revision if len(revision) <= 80 else revision[:80] + "…")
    if not base:
        return f"revision {shown}: the name before ~ or ^ is empty"
    if any(c not in _SUFFIX for c in suffix):
        return f"revision {shown}: after the name only ~N or ^N may follow (main~1, HEAD^2)"
    if 4 <= len(base) <= 64 and all(c in _HEX for c in base):
        return None
    problem = _ref_name_problem(base)
    return f"revision {shown} is not a commit id (4 to 64 hex digits) or a ref name: {problem}" if problem else None


def _ref_name_problem(name: str) -> str | None:
    """git check-ref-format's rules (with --allow-onelevel), plus no leading '-'."""
    if name == "@":
        return "it is '@'"
    if name.startswith("-"):
        return "it starts with '-'"
    if name.startswith("/") or name.endswith("/"):
        return "it starts or ends with '/'"
    if name.endswith("."):
        return "it ends with '.'"
    for c in name:
        if ord(c) < 0x20 or ord(c) == 0x7F:
            return f"it holds a control character ({c!r})"
        if c in _FORBIDDEN:
            return f"it holds {_FORBIDDEN[c]}"
    for bad in ("..", "@{", "//"):
        if bad in name:
            return f"it holds '{bad}'"
    for part in name.split("/"):
        if part.startswith("."):
            return f"a part starts with '.' ({part!r})"
        if part.endswith(".lock"):
            return f"a part ends with .lock ({part!r})"
    return None
