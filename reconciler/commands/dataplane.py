"""`bootstrap` and `run-dataplane`: their shared options, which Dataplane a sidecar is, what
the control plane says of it (admin port, listeners), the credentials it presents, and the
Envoy bootstrap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import click

from reconciler.commands.errors import EXIT_INVALID, CommandExit
from reconciler.commands.transparent_proxy import config_from_options, tproxy_option_names, tproxy_options

__all__ = [
    "DataplaneIdentity",
    "dataplane_identity",
    "dataplane_bootstrap",
    "dataplane_options",
    "bootstrap_command",
    "run_dataplane_command",
]


def _xds_client_options(f: Any) -> Any:
    """Options of `bootstrap` and `run-dataplane` that say how the proxy proves who it is and
    how it checks the control plane."""
    f = click.option(
        "--xds-tls",
        type=click.Choice(["verify", "none"]),
        default="verify",
        show_default=True,
        help="verify: connect over TLS and check the server against --ca-cert; none: plaintext, for a control plane run with --xds-tls none.",
    )(f)
    f = click.option(
        "--ca-cert",
        "--ca-cert-file",
        "ca_cert",
        type=click.Path(exists=True, dir_okay=False),
        help="CA certificate that verifies the control plane's xDS server (serve writes it to <state-dir>/xds-tls/ca.crt).",
    )(f)
    f = click.option(
        "--dataplane-token-file",
        type=click.Path(exists=True, dir_okay=False),
        help="File with this dataplane's token (`reconciler token issue`).",
    )(f)
    return f


_DATAPLANE_OPTIONS = (
    click.option("--cp-address", default="127.0.0.1:5678", show_default=True, help="Control plane xDS address host:port."),
    click.option(
        "--dataplane-file", type=click.Path(exists=True, dir_okay=False), help="A Dataplane resource to register when connecting."
    ),
    click.option("--mesh", help="Mesh of a Dataplane declared in git."),
    click.option("--name", help="Name of a Dataplane declared in git."),
    click.option("--admin-port", type=int, help="Envoy admin port (default: networking.admin.port, or 9901)."),
    click.option("--xds-mode", type=click.Choice(["sotw", "delta"]), default="sotw", show_default=True),
    click.option("--api-address", help="Control plane HTTP API, to look up a git-declared Dataplane (default: cp host, port 5681)."),
)


def dataplane_options(f: Any) -> Any:
    """Options of `bootstrap` and `run-dataplane`: which dataplane, and how to reach the control plane."""
    f = _xds_client_options(f)
    for option in reversed(_DATAPLANE_OPTIONS):
        f = option(f)
    return f


class DataplaneIdentity(NamedTuple):
    mesh: str
    name: str
    text: str | None
    """The Dataplane resource to register (--dataplane-file), None for one declared in git."""
    admin_port: int
    listeners: int | None
    """Addresses Envoy will listen on; None when not known."""


def dataplane_identity(
    dataplane_file: str | None,
    mesh: str | None,
    name: str | None,
    api: str | None,
    *,
    need_admin: bool = True,
    count_listeners: bool = False,
) -> DataplaneIdentity:
    """Which Dataplane, from --dataplane-file or --mesh/--name, and what Envoy needs to know of it.

    A Dataplane declared in git is looked up in the control plane's API (`api`) for its admin
    port (`need_admin`) and its inbounds and outbounds (`count_listeners`, for run-dataplane's
    open-files check); a builtin gateway's listeners are counted in its generated config.
    """
    from reconciler.dataplane.listeners import listeners_of_spec
    from reconciler.source.loader import load_file

    if dataplane_file:
        text = Path(dataplane_file).read_text(encoding="utf-8")
        result = load_file(dataplane_file, text.encode())
        if result.problems:
            raise click.ClickException("\n".join(p.render() for p in result.problems))
        dps = [r for r in result.resources if r.type == "Dataplane"]
        if len(dps) != 1:
            raise click.ClickException(f"{dataplane_file}: expected exactly one Dataplane, found {len(dps)}")
        dp = dps[0]
        admin = int(((dp.spec.get("networking") or {}).get("admin") or {}).get("port") or 9901)
        listeners = listeners_of_spec(dp.spec)
        if listeners is None and count_listeners and api:
            # A builtin gateway: the control plane has its config once it registered (a restart).
            listeners = _gateway_listeners(api, dp.mesh, dp.name, quiet=True)
        return DataplaneIdentity(dp.mesh, dp.name, json.dumps(dp.document()), admin, listeners)
    if not name:
        raise click.UsageError("give --dataplane-file, or --name (and --mesh) of a Dataplane declared in git")
    mesh = mesh or "default"
    admin = 9901
    listeners = None
    if api and (need_admin or count_listeners):
        from reconciler.commands.errors import RepositoryError
        from reconciler.commands.status import fetch_json
        from reconciler.dataplane.listeners import listeners_of_api_entry

        try:
            entry = fetch_json(api, f"/dataplanes/{mesh}/{name}", timeout=5)
        except RepositoryError as e:
            consequences = ([f"using admin port {admin}"] if need_admin else []) + (["open files not checked"] if count_listeners else [])
            click.echo(f"warning: {e.message}; {', '.join(consequences)}", err=True)
        else:
            admin = int(entry.get("adminPort") or 9901)
            if count_listeners:
                listeners = listeners_of_api_entry(entry)
                if listeners is None:
                    listeners = _gateway_listeners(api, mesh, name, quiet=False)
    return DataplaneIdentity(mesh, name, None, admin, listeners)


def _gateway_listeners(api: str, mesh: str, name: str, *, quiet: bool) -> int | None:
    """Listening addresses in the config the control plane generated for a proxy; None when it has none."""
    from reconciler.commands.errors import RepositoryError
    from reconciler.commands.status import fetch_json
    from reconciler.dataplane.listeners import listeners_of_config

    try:
        return listeners_of_config(fetch_json(api, f"/config/{mesh}/{name}", timeout=10))
    except RepositoryError as e:
        if not quiet:
            click.echo(f"warning: {e.message}; open files not checked", err=True)
        return None


def _xds_credentials(token_file: str | None, ca_cert: str | None, xds_tls: str) -> tuple[str | None, str | None]:
    """(token, CA certificate PEM) from the files given, checked so mistakes show here, not in Envoy's log."""
    token = None
    if token_file:
        token = Path(token_file).read_text(encoding="utf-8").strip()
        if not token:
            raise click.UsageError(f"{token_file} is empty: write a token from `reconciler token issue` into it")
    if xds_tls == "none":
        if ca_cert:
            raise click.UsageError("--ca-cert needs TLS: drop --xds-tls none")
        return token, None
    if not ca_cert:
        raise click.UsageError(
            "the control plane serves xDS over TLS: give --ca-cert FILE (serve writes it to <state-dir>/xds-tls/ca.crt), "
            "or --xds-tls none for a control plane run with --xds-tls none"
        )
    pem = Path(ca_cert).read_bytes()
    try:
        from cryptography import x509

        x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise click.UsageError(f"{ca_cert}: not a PEM certificate") from None
    return token, pem.decode()


def _split_address(cp_address: str) -> tuple[str, int]:
    host, _, port = cp_address.rpartition(":")
    if not host or not port.isdigit():
        raise click.UsageError(f"--cp-address {cp_address}: use host:port")
    return host.strip("[]"), int(port)


def dataplane_bootstrap(
    cp_address: str,
    dataplane_file: str | None,
    mesh: str | None,
    name: str | None,
    admin_port: int | None,
    xds_mode: str,
    api_address: str | None,
    dataplane_token_file: str | None,
    ca_cert: str | None,
    xds_tls: str,
    *,
    count_listeners: bool = False,
) -> tuple[dict[str, Any], DataplaneIdentity]:
    from reconciler.dataplane.bootstrap import bootstrap as make_bootstrap

    host, port = _split_address(cp_address)
    token, ca_pem = _xds_credentials(dataplane_token_file, ca_cert, xds_tls)
    identity = dataplane_identity(
        dataplane_file,
        mesh,
        name,
        api_address or f"http://{host}:5681",
        need_admin=admin_port is None,
        count_listeners=count_listeners,
    )
    if admin_port:
        identity = identity._replace(admin_port=admin_port)
    config = make_bootstrap(
        mesh=identity.mesh,
        name=identity.name,
        cp_host=host,
        cp_port=port,
        admin_port=identity.admin_port,
        dataplane=identity.text,
        mode=xds_mode,  # type: ignore[arg-type]
        token=token,
        ca_cert_pem=ca_pem,
    )
    return config, identity


@click.command("bootstrap")
@dataplane_options
def bootstrap_command(**options: Any) -> None:
    """Print the Envoy bootstrap for a dataplane."""
    click.echo(json.dumps(dataplane_bootstrap(**options)[0], indent=2))


@click.command("run-dataplane")
@dataplane_options
@click.option("--work-dir", type=click.Path(file_okay=False), help="Where to write the bootstrap (default: a temp dir).")
@click.option("--log-level", default="info", show_default=True, help="Envoy log level.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Envoy worker threads (default: the container's CPU quota rounded up, else the CPUs this process may run on; fewer when the open-files limit needs it).",
)
@click.option(
    "--drain-time",
    default="30s",
    show_default=True,
    help="How long a replaced listener keeps serving its connections (kuma-dp's flag; a route or policy change replaces the listener that carries it). Whole seconds: 30s, 1m.",
)
@click.option(
    "--transparent-proxy",
    is_flag=True,
    help="Install the transparent proxy's iptables rules in this network namespace before Envoy starts and remove them when it stops "
    "(the options below are `reconciler transparent-proxy install`'s); as root, Envoy and the DNS proxy run as --kuma-dp-user.",
)
@tproxy_options
def run_dataplane_command(
    work_dir: str | None, log_level: str, concurrency: int | None, drain_time: str, transparent_proxy: bool, **options: Any
) -> None:
    """Run Envoy as the sidecar of a dataplane (like kuma-dp); exits with Envoy's exit code."""
    from reconciler.dataplane.envoy_binary import find_envoy
    from reconciler.dataplane.launcher import plan_workers, run_envoy
    from reconciler.durations import parse_duration

    drain = parse_duration(drain_time)
    if drain is None or drain < 0 or drain != int(drain):
        raise click.BadParameter(f"{drain_time!r}: give whole seconds as a duration, e.g. 30s or 1m", param_hint="--drain-time")

    find_envoy()  # no Envoy: say what to install before asking the control plane anything
    tproxy_flags = {name: options.pop(name) for name in tproxy_option_names()}
    config, identity = dataplane_bootstrap(**options, count_listeners=True)
    choice, facts = plan_workers(concurrency, identity.listeners, admin_address=f"127.0.0.1:{identity.admin_port}")
    if choice.message:
        click.echo(choice.message, err=True)
    if choice.fatal:
        raise CommandExit(EXIT_INVALID)
    from reconciler.dataplane.services import sidecar_services

    tproxy = _transparent_proxy(tproxy_flags, identity.text) if transparent_proxy else None
    try:
        code = run_envoy(
            config,
            work_dir=work_dir,
            log_level=log_level,
            drain_time=int(drain),
            extra=choice.args,
            facts=facts,
            services=sidecar_services(dns_port=tproxy.dns_port, run_as=tproxy.run_as) if tproxy else sidecar_services(),
            identity=(identity.mesh, identity.name),
            run_as=tproxy.run_as if tproxy else None,
        )
    finally:
        if tproxy:
            _remove_transparent_proxy()
    raise CommandExit(code)


class _TransparentProxy(NamedTuple):
    dns_port: int | None
    """The DNS proxy's port when DNS is redirected; None: no DNS proxy."""
    run_as: tuple[int, int] | None


def _transparent_proxy(flags: dict[str, Any], dataplane_text: str | None) -> _TransparentProxy:
    """Install the redirect; the ports default to the Dataplane's `transparentProxying`."""
    import os
    import pwd

    from reconciler.dataplane.transparent_proxy import TransparentProxyError, install
    from reconciler.mesh.transparent import Redirect, redirect_from_spec

    networking = (json.loads(dataplane_text).get("networking") or {}) if dataplane_text else {}
    declared = redirect_from_spec(networking.get("transparentProxying") or networking.get("transparent_proxying")) or Redirect()
    cfg = config_from_options(flags, inbound_port=declared.inbound_port, outbound_port=declared.outbound_port)
    try:
        made = install(cfg)
    except TransparentProxyError as e:
        raise click.ClickException(f"transparent proxy: {e}") from None
    for warning in made.warnings:
        click.echo(f"warning: {warning}", err=True)
    run_as = None
    if os.geteuid() == 0 and made.uid != "0":
        try:
            gid = pwd.getpwuid(int(made.uid)).pw_gid
        except KeyError:
            gid = int(made.uid)  # no account: a group of the same number, as the uid alone is
        run_as = (int(made.uid), gid)
    return _TransparentProxy(cfg.dns_port if cfg.dns_enabled else None, run_as)


def _remove_transparent_proxy() -> None:
    from reconciler.dataplane.transparent_proxy import TransparentProxyError, uninstall

    try:
        uninstall()
    except TransparentProxyError as e:
        click.echo(f"warning: transparent proxy rules not removed: {e}", err=True)
