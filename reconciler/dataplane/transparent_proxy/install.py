"""Install and remove the redirect in the network namespace this process runs in, with
`iptables-save` / `iptables-restore` (and their ip6tables twins), as kumactl does.

Install first removes whatever an earlier install left (so it can be run again), then adds the
rules of rules.py with `--noflush`: rules of other software stay. Uninstall keeps every line of
`iptables-save` except our chains (`KUMA_MESH_*`) and the rules that jump to them or carry our
comment, and restores that: nothing else changes.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from reconciler.dataplane.transparent_proxy.config import CHAIN_PREFIX, COMMENT_PREFIX, Config, nameservers, resolve_uid
from reconciler.dataplane.transparent_proxy.rules import IPV4, IPV6, Family, build_restore

__all__ = ["Plan", "TransparentProxyError", "plan", "install", "uninstall", "installed", "loopback_name", "has_local_ipv6"]

log = logging.getLogger(__name__)

_SEARCH = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
_IFF_LOOPBACK = 0x8
_TIMEOUT = 30.0


class TransparentProxyError(RuntimeError):
    """iptables is missing or refused the rules; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Plan:
    """The rules for each family this install covers, and what they were built from."""

    uid: str
    families: tuple[tuple[Family, str], ...]
    warnings: tuple[str, ...] = ()


def _tool(name: str) -> str:
    found = shutil.which(name) or next((f"{d}/{name}" for d in _SEARCH if os.access(f"{d}/{name}", os.X_OK)), None)
    if not found:
        raise TransparentProxyError(f"{name} not found: install iptables (Debian: apt-get install iptables)")
    return found


def _run(argv: list[str], text: str | None = None) -> str:
    try:
        done = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise TransparentProxyError(f"{argv[0]} did not finish in {_TIMEOUT:.0f} s (another process holds the xtables lock?)") from None
    if done.returncode != 0:
        raise TransparentProxyError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def loopback_name() -> str:
    """The loopback interface of this namespace (Kuma looks it up rather than assume `lo`)."""
    for entry in sorted(Path("/sys/class/net").glob("*")):
        try:
            if int((entry / "flags").read_text().strip(), 16) & _IFF_LOOPBACK:
                return entry.name
        except (OSError, ValueError):
            continue
    return "lo"


def has_local_ipv6() -> bool:
    """An IPv6 address on an interface other than loopback (Kuma's condition for ip6tables rules)."""
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return False
    loopback = loopback_name()
    return any(len(words) >= 6 and words[5] != loopback for words in (line.split() for line in lines))


def _zone_split_supported(family: Family) -> bool:
    """The kernel and iptables take the CT target (conntrack zones): asked with --test."""
    probe = "*raw\n-A OUTPUT -p udp --dport 53 -j CT --zone 1\nCOMMIT\n"
    try:
        _run([_tool("ip6tables-restore" if family.ipv6 else "iptables-restore"), "--test", "--noflush"], probe)
    except TransparentProxyError:
        return False
    return True


def plan(cfg: Config, *, probe: bool = True) -> Plan:
    """The rules for this namespace. `probe`: ask iptables whether conntrack zones work (off for
    a dry run on a machine without iptables: then they are assumed to)."""
    cfg.check()
    uid = resolve_uid(cfg.kuma_dp_user)
    families = [IPV4] + ([IPV6] if cfg.ip_family_mode == "dualstack" and has_local_ipv6() else [])
    loopback = loopback_name()
    warnings: list[str] = []
    result: list[tuple[Family, str]] = []
    for family in families:
        servers = [] if cfg.redirect_all_dns_traffic else nameservers(cfg.resolv_conf, ipv6=family.ipv6)
        if cfg.redirect_dns and not servers:
            warnings.append(f"no {family.name} DNS servers found in {cfg.resolv_conf}: DNS is not redirected for {family.name}")
        split = True
        if cfg.dns_enabled and not cfg.skip_dns_conntrack_zone_split and probe and not _zone_split_supported(family):
            warnings.append("conntrack zone splitting is disabled: iptables here has no CT target (conntrack module)")
            split = False
        result.append((family, build_restore(cfg, family, uid=uid, loopback=loopback, dns_servers=servers, zone_split=split)))
    return Plan(uid, tuple(result), tuple(warnings))


def _prefix(family: Family) -> str:
    return "ip6tables" if family.ipv6 else "iptables"


def _without_ours(saved: str) -> str:
    return (
        "\n".join(
            line for line in saved.splitlines() if not line.startswith("#") and CHAIN_PREFIX not in line and COMMENT_PREFIX not in line
        )
        + "\n"
    )


def installed(family: Family = IPV4) -> bool:
    """Whether this namespace has our chains or rules."""
    saved = _run([_tool(f"{_prefix(family)}-save")])
    return CHAIN_PREFIX in saved or COMMENT_PREFIX in saved


def _cleanup(family: Family) -> bool:
    saved = _run([_tool(f"{_prefix(family)}-save")])
    if CHAIN_PREFIX not in saved and COMMENT_PREFIX not in saved:
        return False
    restore = _tool(f"{_prefix(family)}-restore")
    cleaned = _without_ours(saved)
    _run([restore, "--test"], cleaned)
    _run([restore], cleaned)
    return True


def install(cfg: Config) -> Plan:
    """Replace any earlier redirect of this namespace with the one `cfg` describes."""
    made = plan(cfg)
    done: list[Family] = []
    try:
        for family, text in made.families:
            _cleanup(family)
            if family.ipv6:
                # The inbound passthrough cluster binds ::6 (Kuma adds it to loopback the same way).
                subprocess.run(["ip", "-6", "addr", "add", "::6/128", "dev", loopback_name()], capture_output=True, check=False)
            done.append(family)
            _run([_tool(f"{_prefix(family)}-restore"), "--noflush"], text)
            log.info("transparent proxy rules installed", extra={"family": family.name, "uid": made.uid})
    except TransparentProxyError:
        # Half a redirect (IPv4 without IPv6) is worse than none: take back what went in.
        for family in done:
            try:
                _cleanup(family)
            except TransparentProxyError:
                continue
        raise
    return made


def uninstall(*, ipv6: bool = True) -> list[str]:
    """Remove our chains and rules from this namespace (both families unless `ipv6` is False);
    the families that had some."""
    removed = [IPV4.name] if _cleanup(IPV4) else []
    if ipv6 and (shutil.which("ip6tables-save") or any(os.access(f"{d}/ip6tables-save", os.X_OK) for d in _SEARCH)):
        try:
            if _cleanup(IPV6):
                removed.append(IPV6.name)
        except TransparentProxyError as e:
            # A kernel without IPv6 netfilter has nothing of ours to remove.
            log.info("ip6tables cleanup skipped", extra={"error": str(e)})
    return removed
