"""Credential redaction: user info in URLs and known secrets never leave in a message, and the
work is linear in the text, so a hostile string cannot stall the event loop."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from reconciler.source.remote import redact, redact_url
from tests.e2e.harness import REPO_ROOT


def test_user_info_in_urls_and_known_secrets_are_removed() -> None:
    assert redact_url("https://user:secret@host/x") == "https://***@host/x"
    assert (
        redact_url("cannot fetch ssh://git@host:22/r.git and http://t0k3n@127.0.0.1:8/c.git")
        == "cannot fetch ssh://***@host:22/r.git and http://***@127.0.0.1:8/c.git"
    )
    assert redact_url("git+ssh://a:b@h/p, file:///srv/x@y") == "git+ssh://***@h/p, file:///srv/x@y"
    assert redact_url("no url here: user@host:path") == "no url here: user@host:path"
    assert redact("token abc123 in https://u:abc123@h/x", ("abc123",)) == "token *** in https://***@h/x"


# Each held the old pattern, `[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s]+@`, for seconds: it rescans
# the rest of the text from every start position.
HOSTILE = textwrap.dedent("""
    from reconciler.source.remote import redact
    n = 100 * 1024
    for text in ("a" * n, "a://" + "b" * n, "a" * n + ":/", "a://" + "b:" * (n // 2), "x://" * (n // 4), "a.://" * (n // 5)):
        assert len(redact(text, ("zzz",))) >= len(text) - 10
    print("done")
""")


def test_100kb_of_hostile_text_is_redacted_without_stalling() -> None:
    # A separate process: a regex holds the GIL, so a hang guard in this one would hang too.
    result = subprocess.run([sys.executable, "-c", HOSTILE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr
