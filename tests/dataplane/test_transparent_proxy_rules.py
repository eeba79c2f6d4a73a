"""The transparent proxy's iptables rules for kumactl's flag combinations, compared with Kuma
v2.14.3's goldens (app/kumactl/cmd/install/testdata/install-transparent-proxy.*) where they
apply. Kuma's test replaces the loopback name with `ifPlaceholder` and drops comments before
comparing; so do we. The goldens run through `reconciler transparent-proxy install --dry-run`,
the command a user runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.dataplane.transparent_proxy import IPV4, IPV6, Config, ConfigError, build_restore, plan

HEAD = """### IPv4 ###

* nat
-N KUMA_MESH_INBOUND
-N KUMA_MESH_OUTBOUND
-N KUMA_MESH_INBOUND_REDIRECT
-N KUMA_MESH_OUTBOUND_REDIRECT
-A PREROUTING -p tcp -j KUMA_MESH_INBOUND
"""
LOOPBACK = """-A KUMA_MESH_OUTBOUND -s 127.0.0.6/32 -o ifPlaceholder -j RETURN
-A KUMA_MESH_OUTBOUND -p tcp -o ifPlaceholder ! -d 127.0.0.1/32 -m owner --uid-owner 0 -j KUMA_MESH_INBOUND_REDIRECT
-A KUMA_MESH_OUTBOUND -p tcp -o ifPlaceholder -m owner ! --uid-owner 0 -j RETURN
-A KUMA_MESH_OUTBOUND -m owner --uid-owner 0 -j RETURN
-A KUMA_MESH_OUTBOUND -d 127.0.0.1/32 -j RETURN
-A KUMA_MESH_OUTBOUND -j KUMA_MESH_OUTBOUND_REDIRECT
"""


def _tail(inbound: int = 15006, outbound: int = 15001) -> str:
    return f"""-A KUMA_MESH_INBOUND_REDIRECT -p tcp -j REDIRECT --to-ports {inbound}
-A KUMA_MESH_OUTBOUND_REDIRECT -p tcp -j REDIRECT --to-ports {outbound}
COMMIT
"""


# install-transparent-proxy.defaults.golden.txt
DEFAULTS = HEAD + "-A OUTPUT -p tcp -j KUMA_MESH_OUTBOUND\n-A KUMA_MESH_INBOUND -p tcp -j KUMA_MESH_INBOUND_REDIRECT\n" + LOOPBACK + _tail()

# install-transparent-proxy.overrides.golden.txt
OVERRIDES = (
    HEAD
    + """-A OUTPUT -p tcp -j KUMA_MESH_OUTBOUND
-A KUMA_MESH_INBOUND -p tcp --dport 1000 -j RETURN
-A KUMA_MESH_INBOUND -p tcp --dport 1001 -j RETURN
-A KUMA_MESH_INBOUND -p tcp -j KUMA_MESH_INBOUND_REDIRECT
-A KUMA_MESH_OUTBOUND -p tcp --dport 2000 -j RETURN
-A KUMA_MESH_OUTBOUND -p tcp --dport 2001 -j RETURN
"""
    + LOOPBACK
    + _tail(12346, 12345)
)

# install-transparent-proxy.dns.no-conntrack.golden.txt
DNS_NO_CONNTRACK = (
    HEAD
    + """-I OUTPUT 1 -p udp --dport 53 -m owner --uid-owner 0 -j dnsJumpTargetPlaceholder
-A OUTPUT -p tcp --dport 53 -m owner ! --uid-owner 0 -j RETURN
-I OUTPUT 2 -p udp --dport 53 -j REDIRECT --to-ports 12345
-A OUTPUT -p tcp -j KUMA_MESH_OUTBOUND
-A KUMA_MESH_INBOUND -p tcp -j KUMA_MESH_INBOUND_REDIRECT
"""
    + LOOPBACK
    + _tail()
)

# install-transparent-proxy.excludedports.txt
EXCLUDED_PORTS = (
    HEAD
    + """-I OUTPUT 1 -m multiport -p tcp --dport 1900,1902,1000:2000 -m owner --uid-owner 106:108 -j RETURN
-I OUTPUT 2 -m multiport -p tcp --dport 2900,2902,3000:5000 -m owner --uid-owner 203 -j RETURN
-I OUTPUT 3 -m multiport -p udp --dport 3900,3902,4000:6000 -m owner --uid-owner 303 -j RETURN
-A OUTPUT -p tcp -j KUMA_MESH_OUTBOUND
-A KUMA_MESH_INBOUND -p tcp -j KUMA_MESH_INBOUND_REDIRECT
"""
    + LOOPBACK
    + _tail()
)


def _as_kuma_compares(text: str) -> str:
    out = re.sub(r"-o ([^ ]+)", "-o ifPlaceholder", text)
    out = re.sub(r'-m comment --comment ".*?" ', "", out)
    return re.sub(
        r"(?m)^-I OUTPUT (\d+) -p udp --dport 53 -m owner --uid-owner (\d+) -j (\w+)$",
        r"-I OUTPUT \1 -p udp --dport 53 -m owner --uid-owner \2 -j dnsJumpTargetPlaceholder",
        out,
    )


def dry_run(*flags: str) -> str:
    result = CliRunner().invoke(cli, ["transparent-proxy", "install", "--dry-run", "--ip-family-mode", "ipv4", *flags])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize(
    ("flags", "golden"),
    [
        (["--kuma-dp-user", "root"], DEFAULTS),
        (["--kuma-dp-user", "0"], DEFAULTS),
        (
            [
                "--kuma-dp-user",
                "root",
                "--redirect-outbound-port",
                "12345",
                "--redirect-inbound-port",
                "12346",
                "--exclude-outbound-ports",
                "2000,2001",
                "--exclude-inbound-ports",
                "1000,1001",
            ],
            OVERRIDES,
        ),
        (
            ["--kuma-dp-user", "0", "--redirect-all-dns-traffic", "--redirect-dns-port", "12345", "--skip-dns-conntrack-zone-split"],
            # Kuma's golden is for a machine without the conntrack module; skipping the zone split is the same output.
            DNS_NO_CONNTRACK,
        ),
        (
            [
                "--kuma-dp-user",
                "root",
                "--exclude-outbound-ports-for-uids",
                "tcp:1900,1902,1000-2000:106-108",
                "--exclude-outbound-ports-for-uids",
                "tcp:2900,2902,3000-5000:203",
                "--exclude-outbound-ports-for-uids",
                "udp:3900,3902,4000-6000:303",
            ],
            EXCLUDED_PORTS,
        ),
    ],
    ids=["defaults-username", "defaults-uid", "overrides", "dns-all-no-conntrack", "excluded-ports-for-uids"],
)
def test_dry_run_matches_kumas_golden(flags: list[str], golden: str) -> None:
    assert _as_kuma_compares(dry_run(*flags)) == golden


def test_every_rule_carries_kumas_comment_prefix_unless_disabled() -> None:
    text = dry_run("--kuma-dp-user", "0")
    rules = [line for line in text.splitlines() if line.startswith(("-A", "-I"))]
    assert rules and all('-m comment --comment "kuma/mesh/transparent/proxy/' in line for line in rules)
    assert "--comment" not in dry_run("--kuma-dp-user", "0", "--disable-comments")


def test_dns_with_conntrack_zones_splits_the_proxys_queries_from_the_applications() -> None:
    cfg = Config(redirect_all_dns_traffic=True, dns_port=12345, disable_comments=True)
    raw = build_restore(cfg, IPV4, uid="0").split("* nat")[0]
    # Kuma's raw table for "redirect all DNS" (its iptables-save golden in test/transparentproxy).
    assert raw == (
        "* raw\n"
        "-A PREROUTING -p udp --sport 53 -j CT --zone 1\n"
        "-A OUTPUT -p udp --dport 53 -m owner --uid-owner 0 -j CT --zone 1\n"
        "-A OUTPUT -p udp --sport 12345 -m owner --uid-owner 0 -j CT --zone 2\n"
        "-A OUTPUT -p udp --dport 53 -j CT --zone 2\n"
        "COMMIT\n"
    )


def test_redirect_dns_only_captures_the_resolv_conf_nameservers() -> None:
    text = build_restore(Config(redirect_dns=True, disable_comments=True), IPV4, uid="5678", dns_servers=["10.0.0.53"])
    assert "-I OUTPUT 2 -d 10.0.0.53 -p udp --dport 53 -j REDIRECT --to-ports 15053\n" in text
    assert "-A PREROUTING -s 10.0.0.53 -p udp --sport 53 -j CT --zone 1\n" in text
    assert "--dport 53 -j REDIRECT" not in text.replace("-d 10.0.0.53 -p udp --dport 53 -j REDIRECT", "")
    # No nameserver of the family: DNS is left alone for it, as Kuma does.
    assert "15053" not in build_restore(Config(redirect_dns=True), IPV4, uid="5678", dns_servers=[])


def test_dry_run_reads_the_nameservers_from_resolv_conf(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# a comment\nnameserver 192.0.2.10\nnameserver fd00::53\nsearch example\n")
    made = plan(Config(redirect_dns=True, resolv_conf=str(resolv), ip_family_mode="ipv4"), probe=False)
    (family, text), *_ = made.families
    assert family is IPV4
    assert "-d 192.0.2.10 -p udp --dport 53 -j REDIRECT" in text and "fd00::53" not in text


def test_exclusions_of_addresses_go_to_their_family() -> None:
    cfg = Config(
        exclude_outbound_ips=("10.0.0.1,fd00::/8", "192.168.0.0/24"), exclude_inbound_ips=("172.32.0.0/16",), disable_comments=True
    )
    v4 = build_restore(cfg, IPV4, uid="5678")
    assert "-I OUTPUT 1 -d 10.0.0.1 -j RETURN\n-I OUTPUT 2 -d 192.168.0.0/24 -j RETURN\n" in v4
    assert "-A KUMA_MESH_INBOUND -s 172.32.0.0/16 -j RETURN\n" in v4
    v6 = build_restore(cfg, IPV6, uid="5678")
    assert "-I OUTPUT 1 -d fd00::/8 -j RETURN\n" in v6 and "10.0.0.1" not in v6
    assert "-s ::6/128 -o lo -j RETURN" in v6 and "! -d ::1/128" in v6


def test_ports_for_uids_wildcards_mean_every_port_and_both_protocols() -> None:
    text = build_restore(Config(exclude_outbound_ports_for_uids=("*:*:0", "123"), disable_comments=True), IPV4, uid="5678")
    assert (
        "-I OUTPUT 1 -m multiport -p tcp --dport 1:65535 -m owner --uid-owner 0 -j RETURN\n"
        "-I OUTPUT 2 -m multiport -p udp --dport 1:65535 -m owner --uid-owner 0 -j RETURN\n"
        "-I OUTPUT 3 -m multiport -p tcp --dport 1:65535 -m owner --uid-owner 123 -j RETURN\n"
        "-I OUTPUT 4 -m multiport -p udp --dport 1:65535 -m owner --uid-owner 123 -j RETURN\n"
    ) in text


def test_inbound_off_and_insert_instead_of_append() -> None:
    cfg = Config(
        redirect_inbound=False,
        redirect_inbound_insert_instead_of_append=True,
        redirect_outbound_insert_instead_of_append=True,
        drop_invalid_packets=True,
        disable_comments=True,
    )
    text = build_restore(cfg, IPV4, uid="5678")
    assert (
        "-A KUMA_MESH_INBOUND -p tcp -j RETURN\n" in text
        and "-j KUMA_MESH_INBOUND_REDIRECT\n-A" not in text.split("KUMA_MESH_OUTBOUND -s")[0]
    )
    assert "-I PREROUTING 1 -p tcp -j KUMA_MESH_INBOUND\n" in text and "-I OUTPUT 1 -p tcp -j KUMA_MESH_OUTBOUND\n" in text
    assert "* mangle\n-A PREROUTING -m conntrack --ctstate INVALID -j DROP\nCOMMIT\n" in text


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--redirect-dns", "--redirect-all-dns-traffic"],
            "only one of '--redirect-dns' or '--redirect-all-dns-traffic' should be specified",
        ),
        (["--exclude-outbound-ports-for-uids", "a3000-5000:1"], "invalid uint16 value: 'a3000'"),
        (["--exclude-outbound-ports-for-uids", "http:3000-5000:1"], "invalid or unsupported protocol: 'http'"),
        (["--exclude-outbound-ports-for-uids", "3000-5000:1:*"], "wildcard '*' is not allowed for UIDs"),
        (
            ["--exclude-outbound-ports-for-uids", "3000-5000:1:1,2,3"],
            "invalid UID entry: '1,2,3'. It should either be a single item or a range",
        ),
        (["--exclude-outbound-ports-for-uids", "tcp,http:1:1"], "invalid or unsupported protocol: 'http'"),
        (["--exclude-outbound-ips", "10.0.0.300"], "invalid IP address: '10.0.0.300'"),
        (["--exclude-inbound-ports", "0"], "is not a valid port"),
        (["--kuma-dp-user", "no-such-user-here"], "does not refer to a valid user"),
    ],
)
def test_kumas_refusals(flags: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["transparent-proxy", "install", "--dry-run", *flags])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_config_check_refuses_what_the_command_refuses() -> None:
    with pytest.raises(ConfigError, match="only one of"):
        build_restore(Config(redirect_dns=True, redirect_all_dns_traffic=True), IPV4, uid="0")
