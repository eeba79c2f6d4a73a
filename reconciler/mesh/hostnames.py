"""Gateway hostname matching, as Kuma's pkg/plugins/runtime/gateway/match/hostnames.go does it:
whether one hostname (possibly a `*.` wildcard) contains or overlaps another, and the order
from most exact to least exact that listeners and virtual hosts are built in.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["WILDCARD", "exactness", "hostname_contains", "hostnames_match", "sort_hostnames"]

WILDCARD = "*"


def _split(name: str) -> tuple[str, tuple[str, ...]]:
    parts = (name or WILDCARD).split(".")
    return parts[0], tuple(parts[1:])


def hostname_contains(target: str, test: str) -> bool:
    """Whether every name `test` matches is matched by `target` (`*.a.com` contains `x.a.com`)."""
    host, domain = _split(target)
    other_host, other_domain = _split(test)
    if len(domain) > len(other_domain):
        return False
    if domain and other_domain[-len(domain) :] != domain:
        return False
    return host in (WILDCARD, other_host)


def hostnames_match(target: str, other: str) -> bool:
    """Whether two hostnames can name the same host (equal, or one contains the other)."""
    return target == other or hostname_contains(target, other) or hostname_contains(other, target)


def exactness(name: str) -> tuple[int, int, str]:
    host, domain = _split(name)
    wildcard = host == WILDCARD
    return (1 if wildcard else 0, -len(domain) if wildcard else 0, name or WILDCARD)


def sort_hostnames(names: Sequence[str]) -> list[str]:
    """Most exact first: names before wildcards, longer wildcard domains before shorter."""
    return sorted(names, key=exactness)
