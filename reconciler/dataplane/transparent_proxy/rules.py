"""The iptables rules of Kuma's transparent proxy, as `iptables-restore` input: a pure function
of the Config and a few facts of the namespace (loopback name, DNS servers, proxy uid).

The shape follows `kumactl install transparent-proxy` of Kuma v2.14.3, rule for rule and in
the same order, so its goldens apply to our output once comments are stripped:

- nat/PREROUTING sends TCP to KUMA_MESH_INBOUND, which RETURNs excluded sources and ports and
  sends the rest to KUMA_MESH_INBOUND_REDIRECT (REDIRECT to the inbound port, 15006);
- nat/OUTPUT first RETURNs the `--exclude-outbound-ports-for-uids` and `--exclude-outbound-ips`
  matches (inserted at the top), handles DNS, then sends TCP to KUMA_MESH_OUTBOUND, which
  RETURNs excluded ports, the proxy's own traffic (its uid), loopback traffic of the
  applications and traffic to 127.0.0.1, sends the proxy's loopback traffic to a local
  non-127.0.0.1 address back through the inbound redirect (a mesh call to the workload
  itself), and REDIRECTs the rest to the outbound port (15001);
- DNS: UDP/53 from anyone but the proxy to the resolv.conf nameservers (or to any address
  with "redirect all") is REDIRECTed to the DNS proxy (15053); the raw table splits conntrack
  zones so the proxy's own upstream queries and the applications' queries cannot collide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from reconciler.dataplane.transparent_proxy.config import (
    CHAIN_PREFIX,
    COMMENT_PREFIX,
    DNS_PORT,
    Config,
    Exclusion,
    parse_exclude_ips,
    parse_exclude_ports_for_uids,
)

__all__ = ["Family", "IPV4", "IPV6", "INBOUND", "OUTBOUND", "INBOUND_REDIRECT", "OUTBOUND_REDIRECT", "build_restore", "dry_run_text"]

INBOUND = f"{CHAIN_PREFIX}_INBOUND"
OUTBOUND = f"{CHAIN_PREFIX}_OUTBOUND"
INBOUND_REDIRECT = f"{CHAIN_PREFIX}_INBOUND_REDIRECT"
OUTBOUND_REDIRECT = f"{CHAIN_PREFIX}_OUTBOUND_REDIRECT"

_COMMENT_MAX = 254
"""The comment match holds 255 bytes with its NUL."""


@dataclass(frozen=True, slots=True)
class Family:
    """What differs between iptables and ip6tables."""

    name: str
    ipv6: bool
    localhost: str
    passthrough_source: str
    """The source address Envoy's inbound passthrough cluster binds to (Kuma's 127.0.0.6 / ::6)."""


IPV4 = Family("IPv4", False, "127.0.0.1/32", "127.0.0.6/32")
IPV6 = Family("IPv6", True, "::1/128", "::6/128")


@dataclass(slots=True)
class _Rule:
    chain: str
    params: list[str]
    comment: str
    position: int = 0
    """1-based insert position; 0 appends."""

    def render(self, comments: bool) -> str:
        head = ["-I", self.chain, str(self.position)] if self.position else ["-A", self.chain]
        if comments and self.comment:
            head += ["-m", "comment", "--comment", _quote(f"{COMMENT_PREFIX}/{self.comment}"[:_COMMENT_MAX])]
        return " ".join(head + self.params)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(slots=True)
class _Chain:
    name: str
    rules: list[_Rule] = field(default_factory=list)
    inserted: int = 0

    def append(self, comment: str, *params: str) -> None:
        self.rules.append(_Rule(self.name, list(params), comment))

    def insert(self, comment: str, *params: str) -> None:
        # Inserts go to the top in the order they are made (positions 1, 2, ...), above every append.
        self.inserted += 1
        self.rules.append(_Rule(self.name, list(params), comment, self.inserted))

    def add(self, insert: bool, comment: str, *params: str) -> None:
        (self.insert if insert else self.append)(comment, *params)


def _table(name: str, builtin: Sequence[_Chain], custom: Sequence[_Chain], comments: bool) -> str:
    lines = [rule.render(comments) for chain in (*builtin, *custom) for rule in chain.rules]
    if not lines:
        return ""
    return "\n".join([f"* {name}", *(f"-N {c.name}" for c in custom), *lines, "COMMIT"])


def _owner(uid: str, negate: bool = False) -> list[str]:
    return ["-m", "owner", *(["!"] if negate else []), "--uid-owner", uid]


def _raw(cfg: Config, family: Family, uid: str, dns_servers: Sequence[str], zone_split: bool) -> str:
    prerouting, output = _Chain("PREROUTING"), _Chain("OUTPUT")
    if zone_split:
        udp_dns = ["-p", "udp", "--dport", str(DNS_PORT)]
        output.append("conntrack zone 1 for the proxy's own DNS queries", *udp_dns, *_owner(uid), "-j", "CT", "--zone", "1")
        output.append(
            "conntrack zone 2 for the DNS proxy's answers",
            "-p",
            "udp",
            "--sport",
            str(cfg.dns_port),
            *_owner(uid),
            "-j",
            "CT",
            "--zone",
            "2",
        )
        if cfg.redirect_all_dns_traffic:
            output.append("conntrack zone 2 for every DNS query", *udp_dns, "-j", "CT", "--zone", "2")
            prerouting.append("conntrack zone 1 for every DNS answer", "-p", "udp", "--sport", str(DNS_PORT), "-j", "CT", "--zone", "1")
        else:
            for ip in dns_servers:
                output.append(f"conntrack zone 2 for DNS queries to {ip}", "-d", ip, *udp_dns, "-j", "CT", "--zone", "2")
                if ip.startswith("127.") or ip == "::1":
                    # A local resolver whose port a DNAT rule changed (Docker's 127.0.0.11) answers from another port.
                    output.append(
                        "conntrack zone 1 for a local resolver's answers",
                        "-s",
                        ip,
                        "-d",
                        family.localhost,
                        "-p",
                        "udp",
                        "-j",
                        "CT",
                        "--zone",
                        "1",
                    )
                prerouting.append(
                    f"conntrack zone 1 for DNS answers of {ip}", "-s", ip, "-p", "udp", "--sport", str(DNS_PORT), "-j", "CT", "--zone", "1"
                )
    return _table("raw", (prerouting, output), (), not cfg.disable_comments)


def _nat(cfg: Config, family: Family, uid: str, loopback: str, dns_servers: Sequence[str], dns: bool) -> str:
    prerouting, output = _Chain("PREROUTING"), _Chain("OUTPUT")
    inbound, outbound = _Chain(INBOUND), _Chain(OUTBOUND)
    inbound_redirect, outbound_redirect = _Chain(INBOUND_REDIRECT), _Chain(OUTBOUND_REDIRECT)

    exclusions = parse_exclude_ports_for_uids(cfg.exclude_outbound_ports_for_uids) + parse_exclude_ips(
        cfg.exclude_outbound_ips, ipv6=family.ipv6
    )
    for e in exclusions:
        output.insert("excluded from redirection (ports, uids, addresses)", *_exclusion_params(e), "-j", "RETURN")
    if dns:
        udp_dns = ["-p", "udp", "--dport", str(DNS_PORT)]
        output.insert("the proxy's own DNS queries go out as they are", *udp_dns, *_owner(uid), "-j", "RETURN")
        output.append(
            "applications' DNS over TCP goes out as it is", "-p", "tcp", "--dport", str(DNS_PORT), *_owner(uid, negate=True), "-j", "RETURN"
        )
        to_proxy = ["-j", "REDIRECT", "--to-ports", str(cfg.dns_port)]
        if cfg.redirect_all_dns_traffic:
            output.insert(f"every DNS query to the DNS proxy (port {cfg.dns_port})", *udp_dns, *to_proxy)
        else:
            for ip in dns_servers:
                output.insert(f"DNS queries to {ip} to the DNS proxy (port {cfg.dns_port})", "-d", ip, *udp_dns, *to_proxy)
    output.add(cfg.redirect_outbound_insert_instead_of_append, "outbound TCP to the mesh chain", "-p", "tcp", "-j", OUTBOUND)
    prerouting.add(cfg.redirect_inbound_insert_instead_of_append, "inbound TCP to the mesh chain", "-p", "tcp", "-j", INBOUND)

    if not cfg.redirect_inbound:
        inbound.append("inbound redirection is off", "-p", "tcp", "-j", "RETURN")
    else:
        for e in parse_exclude_ips(cfg.exclude_inbound_ips, ipv6=family.ipv6):
            inbound.append("excluded source address", "-s", e.address, "-j", "RETURN")
        for port in cfg.include_inbound_ports:
            inbound.append(f"inbound port {port} to the proxy", "-p", "tcp", "--dport", str(port), "-j", INBOUND_REDIRECT)
        if not cfg.include_inbound_ports:
            for port in cfg.exclude_inbound_ports:
                inbound.append(f"inbound port {port} is excluded", "-p", "tcp", "--dport", str(port), "-j", "RETURN")
            inbound.append("every other inbound TCP connection to the proxy", "-p", "tcp", "-j", INBOUND_REDIRECT)

    if not cfg.include_outbound_ports:
        for port in cfg.exclude_outbound_ports:
            outbound.append(f"outbound port {port} is excluded", "-p", "tcp", "--dport", str(port), "-j", "RETURN")
    outbound.append(
        f"the proxy's inbound passthrough (source {family.passthrough_source})",
        "-s",
        family.passthrough_source,
        "-o",
        loopback,
        "-j",
        "RETURN",
    )
    outbound.append(
        "the proxy calling this workload's own address goes through the inbound redirect",
        "-p",
        "tcp",
        "-o",
        loopback,
        "!",
        "-d",
        family.localhost,
        *_owner(uid),
        "-j",
        INBOUND_REDIRECT,
    )
    outbound.append("applications' loopback traffic stays local", "-p", "tcp", "-o", loopback, *_owner(uid, negate=True), "-j", "RETURN")
    outbound.append(f"the proxy's own traffic (uid {uid}) goes out as it is", *_owner(uid), "-j", "RETURN")
    outbound.append(f"traffic to {family.localhost} stays local", "-d", family.localhost, "-j", "RETURN")
    for port in cfg.include_outbound_ports:
        outbound.append(f"outbound port {port} to the proxy", "-p", "tcp", "--dport", str(port), "-j", OUTBOUND_REDIRECT)
    if not cfg.include_outbound_ports:
        outbound.append("every other outbound connection to the proxy", "-j", OUTBOUND_REDIRECT)

    for chain, port in ((inbound_redirect, cfg.inbound_port), (outbound_redirect, cfg.outbound_port)):
        chain.append(f"to the proxy's port {port}", "-p", "tcp", "-j", "REDIRECT", "--to-ports", str(port))
    return _table(
        "nat",
        (prerouting, _Chain("INPUT"), output, _Chain("POSTROUTING")),
        (inbound, outbound, inbound_redirect, outbound_redirect),
        not cfg.disable_comments,
    )


def _exclusion_params(e: Exclusion) -> list[str]:
    params = ["-m", "multiport"] if e.ports else []
    if e.protocol:
        params += ["-p", e.protocol] + (["--dport", e.ports] if e.ports else [])
    if e.uids:
        params += _owner(e.uids)
    if e.address:
        params += ["-d", e.address]
    return params


def _mangle(cfg: Config) -> str:
    prerouting = _Chain("PREROUTING")
    if cfg.drop_invalid_packets:
        prerouting.append("drop packets conntrack finds INVALID", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
    return _table("mangle", (prerouting,), (), not cfg.disable_comments)


def build_restore(
    cfg: Config, family: Family, *, uid: str, loopback: str = "lo", dns_servers: Sequence[str] = (), zone_split: bool = True
) -> str:
    """`iptables-restore --noflush` input for one family: the raw, nat and mangle tables (those
    with rules). `dns_servers` are this family's resolv.conf nameservers (used unless all DNS is
    redirected; with none, DNS is not redirected for the family, as in Kuma); `zone_split`
    says whether the kernel can split conntrack zones (the CT target)."""
    cfg.check()
    dns = cfg.dns_enabled and (cfg.redirect_all_dns_traffic or bool(dns_servers))
    split = dns and zone_split and not cfg.skip_dns_conntrack_zone_split
    tables = [
        _raw(cfg, family, uid, dns_servers, split),
        _nat(cfg, family, uid, loopback, dns_servers, dns),
        _mangle(cfg),
    ]
    return "\n".join(t for t in tables if t) + "\n"


def dry_run_text(parts: Sequence[tuple[Family, str]]) -> str:
    """What `--dry-run` prints: each family's rules under `### IPv4 ###` (Kuma's layout)."""
    return "\n\n".join(f"### {family.name} ###\n\n{text.strip()}" for family, text in parts) + "\n"
