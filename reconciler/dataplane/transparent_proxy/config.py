"""What `reconciler transparent-proxy install` is asked to set up, with the defaults and flag
syntax of `kumactl install transparent-proxy` (Kuma v2.14.3), and the checks that turn a
mistyped flag into a message before any rule is written.

Everything here is pure: the uid is resolved from the password database and the DNS servers
are read from a resolv.conf path, but nothing touches iptables.
"""

from __future__ import annotations

import ipaddress
import pwd
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_UID",
    "DEFAULT_USERNAME",
    "Config",
    "ConfigError",
    "Exclusion",
    "parse_ports",
    "parse_exclude_ports_for_uids",
    "parse_exclude_ips",
    "resolve_uid",
    "nameservers",
]

DEFAULT_UID = "5678"
"""The uid kuma-dp runs as unless told otherwise (Kuma's `consts.OwnerDefaultUID`)."""
DEFAULT_USERNAME = "kuma-dp"

CHAIN_PREFIX = "KUMA_MESH"
"""Every chain we create starts with this: uninstall finds our rules by it (Kuma's prefix, so a
kumactl-installed redirect and ours clean each other up)."""
COMMENT_PREFIX = "kuma/mesh/transparent/proxy"
"""Every rule we write carries a comment starting with this (Kuma's prefix, for the same reason)."""

DNS_PORT = 53


class ConfigError(ValueError):
    """A flag value that cannot be turned into rules; the message names the value."""


@dataclass(frozen=True, slots=True)
class Exclusion:
    """One RETURN rule of the OUTPUT chain (outbound) or KUMA_MESH_INBOUND (inbound): by
    protocol, destination ports, owner uids and/or address. Ports and uids use iptables'
    syntax already (ranges with ':'), as Kuma stores them."""

    protocol: str = ""
    ports: str = ""
    uids: str = ""
    address: str = ""


@dataclass(frozen=True, slots=True)
class Config:
    """The install's settings, named after kumactl's flags (`--redirect-inbound-port` is
    `inbound_port`, and so on); defaults are Kuma's."""

    kuma_dp_user: str = ""
    """Username or uid of the proxy (Envoy and the DNS proxy); empty: uid 5678 or user kuma-dp."""
    ip_family_mode: str = "dualstack"
    """dualstack: ip6tables too, when this namespace has an IPv6 address besides loopback; ipv4: iptables only."""
    redirect_inbound: bool = True
    inbound_port: int = 15006
    outbound_port: int = 15001
    exclude_inbound_ports: tuple[int, ...] = ()
    exclude_outbound_ports: tuple[int, ...] = ()
    include_inbound_ports: tuple[int, ...] = ()
    include_outbound_ports: tuple[int, ...] = ()
    exclude_outbound_ports_for_uids: tuple[str, ...] = ()
    exclude_outbound_ips: tuple[str, ...] = ()
    exclude_inbound_ips: tuple[str, ...] = ()
    redirect_dns: bool = False
    """UDP DNS to the nameservers of `resolv_conf` goes to the DNS proxy."""
    redirect_all_dns_traffic: bool = False
    """All UDP DNS (port 53, any address) goes to the DNS proxy."""
    dns_port: int = 15053
    skip_dns_conntrack_zone_split: bool = False
    resolv_conf: str = "/etc/resolv.conf"
    drop_invalid_packets: bool = False
    disable_comments: bool = False
    redirect_inbound_insert_instead_of_append: bool = False
    redirect_outbound_insert_instead_of_append: bool = False

    @property
    def dns_enabled(self) -> bool:
        return self.redirect_dns or self.redirect_all_dns_traffic

    def check(self) -> None:
        """Raise ConfigError for values Kuma refuses too."""
        if self.redirect_dns and self.redirect_all_dns_traffic:
            raise ConfigError("only one of '--redirect-dns' or '--redirect-all-dns-traffic' should be specified")
        if self.ip_family_mode not in ("dualstack", "ipv4"):
            raise ConfigError(f"--ip-family-mode {self.ip_family_mode!r}: use 'dualstack' or 'ipv4'")
        for name in ("inbound_port", "outbound_port", "dns_port"):
            _port(str(getattr(self, name)))
        for port in (*self.exclude_inbound_ports, *self.exclude_outbound_ports, *self.include_inbound_ports, *self.include_outbound_ports):
            _port(str(port))
        parse_exclude_ports_for_uids(self.exclude_outbound_ports_for_uids)
        parse_exclude_ips(self.exclude_outbound_ips, ipv6=False)
        parse_exclude_ips(self.exclude_inbound_ips, ipv6=False)


def _uint16(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise ConfigError(f"invalid uint16 value: '{text}'")
    return int(text)


def _port(text: str) -> int:
    value = _uint16(text.strip()) if text.strip().isdigit() else 0
    if not 1 <= value <= 65535:
        raise ConfigError(f"value '{text}' is not a valid port (uint16 in the range [1, 65535])")
    return value


def parse_ports(text: str) -> tuple[int, ...]:
    """A comma-separated port list (`--exclude-inbound-ports 1000,1001`)."""
    return tuple(_port(p) for p in text.split(",") if p.strip())


def _value_or_range(text: str, what: str) -> None:
    for element in text.split(","):
        for bound in element.split("-"):
            try:
                _uint16(bound)
            except ConfigError as e:
                raise ConfigError(f"invalid {what}: validation failed for value or range '{text}': {e}") from None


def parse_exclude_ports_for_uids(values: tuple[str, ...] | list[str]) -> list[Exclusion]:
    """`--exclude-outbound-ports-for-uids [protocol:][ports:]uids`: protocol tcp, udp, both
    (`*` or omitted); ports a list of values and ranges (`*` or omitted: all); uids one value
    or one range. One Exclusion per protocol, in the order given."""
    result: list[Exclusion] = []
    for value in values:
        parts = value.split(":")
        if len(parts) > 3:
            raise ConfigError(f"invalid format for excluding ports by UIDs: '{value}'. Expected format: <protocol:>?<ports:>?<uids>")
        protocols_text, ports, uids = {1: ("*", "*", parts[0]), 2: ("*", parts[0], parts[-1]), 3: tuple(parts)}[len(parts)]
        if uids == "*":
            raise ConfigError("wildcard '*' is not allowed for UIDs")
        if ports in ("*", ""):
            ports = "1-65535"
        _value_or_range(ports, "port range")
        if "," in uids:
            raise ConfigError(f"invalid UID entry: '{uids}'. It should either be a single item or a range")
        _value_or_range(uids, "UID range")
        if protocols_text in ("", "*"):
            protocols = ["tcp", "udp"]
        else:
            protocols = []
            for p in protocols_text.split(","):
                name = p.strip().lower()
                if name not in ("tcp", "udp"):
                    raise ConfigError(f"invalid or unsupported protocol: '{p.strip()}'")
                protocols.append(name)
        result.extend(Exclusion(protocol=p, ports=ports.replace("-", ":"), uids=uids.replace("-", ":")) for p in protocols)
    return result


def parse_exclude_ips(values: tuple[str, ...] | list[str], *, ipv6: bool) -> list[Exclusion]:
    """`--exclude-outbound-ips` / `--exclude-inbound-ips`: addresses or CIDRs, repeated or
    comma-separated; only those of the family asked for are kept (the flag takes both)."""
    result: list[Exclusion] = []
    for value in values:
        if not value:
            raise ConfigError("invalid exclusion rule: the rule cannot be empty")
        for address in (a.strip() for a in value.split(",")):
            try:
                network = ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise ConfigError(
                    f"invalid IP address: '{address}'. Expected format: <ip> or <ip>/<cidr> (e.g., 10.0.0.1, 172.16.0.0/16, fe80::1, fe80::/10)"
                ) from None
            if (network.version == 6) == ipv6:
                result.append(Exclusion(address=address))
    return result


def resolve_uid(user: str) -> str:
    """The uid of `user` (a uid or a username). Empty: 5678 (Kuma looks for an account with uid
    5678, then for the user kuma-dp); with neither account, 5678 anyway: iptables matches a bare
    uid, and a sidecar started as root switches to it without an account (Kuma insists on one)."""
    if user:
        if user.isdigit():
            return user
        try:
            return str(pwd.getpwnam(user).pw_uid)
        except KeyError:
            raise ConfigError(f"the specified UID or username ('{user}') does not refer to a valid user on the host") from None
    try:
        pwd.getpwuid(int(DEFAULT_UID))
    except KeyError:
        try:
            return str(pwd.getpwnam(DEFAULT_USERNAME).pw_uid)
        except KeyError:
            pass
    return DEFAULT_UID


def nameservers(resolv_conf: str, *, ipv6: bool) -> list[str]:
    """The `nameserver` addresses of a resolv.conf of one family, in order; none when it is unreadable."""
    try:
        text = Path(resolv_conf).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                address = ipaddress.ip_address(words[1].split("%", 1)[0])
            except ValueError:
                continue
            if (address.version == 6) == ipv6:
                found.append(str(address))
    return found
