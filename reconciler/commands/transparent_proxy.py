"""`reconciler transparent-proxy install|uninstall`: kumactl's `install transparent-proxy` and
`uninstall transparent-proxy` for the current network namespace, with kumactl's flag names.
`run-dataplane --transparent-proxy` takes the same flags (`tproxy_options`)."""

from __future__ import annotations

from typing import Any

import click

from reconciler.commands.errors import EXIT_INVALID, CommandExit

__all__ = ["transparent_proxy_group", "tproxy_options", "tproxy_option_names", "config_from_options"]


def _ports(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> tuple[int, ...]:
    from reconciler.dataplane.transparent_proxy.config import ConfigError, parse_ports

    try:
        return tuple(p for text in value for p in parse_ports(text))
    except ConfigError as e:
        raise click.BadParameter(str(e)) from None


_OPTIONS = (
    click.option(
        "--kuma-dp-user",
        "--kuma-dp-uid",
        "kuma_dp_user",
        default="",
        help="Username or uid that runs the proxy (Envoy, the DNS proxy); its traffic is not redirected. Default: uid 5678 (user kuma-dp when it exists).",
    ),
    click.option(
        "--ip-family-mode",
        type=click.Choice(["dualstack", "ipv4"], case_sensitive=False),
        default="dualstack",
        show_default=True,
        help="dualstack: ip6tables too when the namespace has IPv6 addresses; ipv4: iptables only.",
    ),
    click.option("--redirect-outbound-port", type=click.IntRange(1, 65535), help="Envoy's outbound port (redirectPortOutbound, 15001)."),
    click.option("--redirect-inbound-port", type=click.IntRange(1, 65535), help="Envoy's inbound port (redirectPortInbound, 15006)."),
    click.option(
        "--redirect-inbound",
        type=click.BOOL,
        default=True,
        show_default=True,
        help="Redirect inbound traffic to Envoy (false for a gateway).",
    ),
    click.option("--exclude-inbound-ports", multiple=True, callback=_ports, help="Comma-separated inbound ports not redirected (e.g. 22)."),
    click.option("--exclude-outbound-ports", multiple=True, callback=_ports, help="Comma-separated outbound ports not redirected."),
    click.option(
        "--exclude-outbound-ports-for-uids",
        multiple=True,
        help="[protocol:][ports:]uids not redirected, repeatable: tcp:3000-5000:106-108, 53:1000, 107.",
    ),
    click.option(
        "--exclude-outbound-ips",
        multiple=True,
        help="Addresses or CIDRs whose outbound traffic is not redirected (repeatable, comma-separated).",
    ),
    click.option("--exclude-inbound-ips", multiple=True, help="Source addresses or CIDRs whose inbound traffic is not redirected."),
    click.option("--redirect-dns", is_flag=True, help="Send UDP DNS queries to the nameservers of /etc/resolv.conf to the DNS proxy."),
    click.option("--redirect-all-dns-traffic", is_flag=True, help="Send every UDP DNS query (any address) to the DNS proxy."),
    click.option("--redirect-dns-port", type=click.IntRange(1, 65535), default=15053, show_default=True, help="Port of the DNS proxy."),
    click.option(
        "--skip-dns-conntrack-zone-split",
        is_flag=True,
        help="Do not split conntrack zones between DNS queries of the proxy and the applications.",
    ),
    click.option("--drop-invalid-packets", is_flag=True, help="Drop packets conntrack finds INVALID (mangle table)."),
    click.option("--disable-comments", is_flag=True, help="Write the rules without comments."),
    click.option(
        "--redirect-inbound-insert-instead-of-append", is_flag=True, help="Insert the PREROUTING jump at the top instead of appending it."
    ),
    click.option(
        "--redirect-outbound-insert-instead-of-append", is_flag=True, help="Insert the OUTPUT jump at the top instead of appending it."
    ),
)

_NAMES = (
    "kuma_dp_user",
    "ip_family_mode",
    "redirect_outbound_port",
    "redirect_inbound_port",
    "redirect_inbound",
    "exclude_inbound_ports",
    "exclude_outbound_ports",
    "exclude_outbound_ports_for_uids",
    "exclude_outbound_ips",
    "exclude_inbound_ips",
    "redirect_dns",
    "redirect_all_dns_traffic",
    "redirect_dns_port",
    "skip_dns_conntrack_zone_split",
    "drop_invalid_packets",
    "disable_comments",
    "redirect_inbound_insert_instead_of_append",
    "redirect_outbound_insert_instead_of_append",
)


def tproxy_option_names() -> tuple[str, ...]:
    """The parameter names `tproxy_options` adds."""
    return _NAMES


def tproxy_options(f: Any) -> Any:
    for option in reversed(_OPTIONS):
        f = option(f)
    return f


def config_from_options(options: dict[str, Any], *, inbound_port: int = 15006, outbound_port: int = 15001) -> Any:
    """A transparent_proxy.Config from the options of `tproxy_options` (popped from `options`);
    the ports given by flag win over `inbound_port`/`outbound_port` (a Dataplane's)."""
    from reconciler.dataplane.transparent_proxy import Config, ConfigError

    o = {name: options.pop(name) for name in _NAMES}
    cfg = Config(
        kuma_dp_user=o["kuma_dp_user"],
        ip_family_mode=o["ip_family_mode"].lower(),
        redirect_inbound=o["redirect_inbound"],
        inbound_port=o["redirect_inbound_port"] or inbound_port,
        outbound_port=o["redirect_outbound_port"] or outbound_port,
        exclude_inbound_ports=o["exclude_inbound_ports"],
        exclude_outbound_ports=o["exclude_outbound_ports"],
        exclude_outbound_ports_for_uids=tuple(o["exclude_outbound_ports_for_uids"]),
        exclude_outbound_ips=tuple(o["exclude_outbound_ips"]),
        exclude_inbound_ips=tuple(o["exclude_inbound_ips"]),
        redirect_dns=o["redirect_dns"],
        redirect_all_dns_traffic=o["redirect_all_dns_traffic"],
        dns_port=o["redirect_dns_port"],
        skip_dns_conntrack_zone_split=o["skip_dns_conntrack_zone_split"],
        drop_invalid_packets=o["drop_invalid_packets"],
        disable_comments=o["disable_comments"],
        redirect_inbound_insert_instead_of_append=o["redirect_inbound_insert_instead_of_append"],
        redirect_outbound_insert_instead_of_append=o["redirect_outbound_insert_instead_of_append"],
    )
    try:
        cfg.check()
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    return cfg


@click.group("transparent-proxy")
def transparent_proxy_group() -> None:
    """Redirect this network namespace's traffic through its sidecar (kumactl install transparent-proxy)."""


@transparent_proxy_group.command("install")
@tproxy_options
@click.option("--dry-run", is_flag=True, help="Print the iptables-restore input and change nothing.")
def install_command(dry_run: bool, **options: Any) -> None:
    """Install the iptables rules in the current network namespace (replacing an earlier install)."""
    from reconciler.dataplane.transparent_proxy import ConfigError, TransparentProxyError, dry_run_text, install, plan

    cfg = config_from_options(options)
    try:
        made = plan(cfg, probe=False) if dry_run else install(cfg)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    except TransparentProxyError as e:
        click.echo(f"error: {e}", err=True)
        raise CommandExit(EXIT_INVALID) from None
    for warning in made.warnings:
        click.echo(f"warning: {warning}", err=True)
    if dry_run:
        click.echo(dry_run_text(made.families), nl=False)
    else:
        click.echo(f"transparent proxy installed ({', '.join(f.name for f, _ in made.families)}; proxy uid {made.uid})", err=True)


@transparent_proxy_group.command("uninstall")
def uninstall_command() -> None:
    """Remove the chains and rules `install` added from the current network namespace; nothing else changes."""
    from reconciler.dataplane.transparent_proxy import TransparentProxyError, uninstall

    try:
        removed = uninstall()
    except TransparentProxyError as e:
        click.echo(f"error: {e}", err=True)
        raise CommandExit(EXIT_INVALID) from None
    click.echo(f"transparent proxy uninstalled ({', '.join(removed)})" if removed else "no transparent proxy rules found", err=True)
