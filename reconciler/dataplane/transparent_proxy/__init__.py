"""Kuma's transparent proxy on Universal: the iptables rules that send a workload's traffic
through its sidecar (rules.py, pure), the flags that shape them (config.py) and their install
in the current network namespace (install.py). docs/networking.md shows a `--dry-run`."""

from reconciler.dataplane.transparent_proxy.config import Config, ConfigError
from reconciler.dataplane.transparent_proxy.install import Plan, TransparentProxyError, install, plan, uninstall
from reconciler.dataplane.transparent_proxy.rules import IPV4, IPV6, build_restore, dry_run_text

__all__ = [
    "Config",
    "ConfigError",
    "Plan",
    "TransparentProxyError",
    "install",
    "plan",
    "uninstall",
    "IPV4",
    "IPV6",
    "build_restore",
    "dry_run_text",
]
