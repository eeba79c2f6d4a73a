"""`reconciler status`: what a running server serves, and how each proxy took it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import click

from reconciler.commands.errors import RepositoryError
from reconciler.commands.options import format_option
from reconciler.errors import escape_control

__all__ = ["fetch_json", "status_text", "status_command"]


def fetch_json(server: str, path: str, *, method: str = "GET", body: bytes | None = None, timeout: float = 10.0) -> Any:
    url = server.rstrip("/") + path
    if "://" not in url:
        url = "http://" + url
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")
        raise RepositoryError(f"{url}: HTTP {e.code}: {detail.strip()}") from None
    except (urllib.error.URLError, OSError) as e:
        raise RepositoryError(f"cannot reach the control plane at {url}: {e}") from None


def status_text(status: dict[str, Any]) -> str:
    lines = [
        f"applied:   {status.get('lastAppliedRevision') or '-'}",
        f"attempted: {status.get('lastAttemptedRevision') or '-'}",
    ]
    for c in status.get("conditions", []):
        lines.append(f"{c['type']}={c['status']} {c['reason']}: {c['message']}")
    failure = status.get("lastFailure")
    if failure and failure.get("errors"):
        lines.append("errors of the last failure:")
        for e in failure["errors"]:
            if not (e.get("file") or e.get("resource") or e.get("pointer")):
                lines.append(f"  {e['message']}")  # about the commit itself: a signature, a NACK
                continue
            where = f"{e['file']}:{e['line']}" if e.get("file") else "<repository>"
            res = e.get("resource") or {}
            ident = f" {res.get('type')} {res.get('mesh') or ''}/{res.get('name')}" if res else ""
            lines.append(f"  {where}:{ident} {e.get('pointer', '')}: {e['message']}")
    proxies = status.get("proxies", {})
    if proxies:
        lines.append("")
        lines.append(f"{'PROXY':<32} {'CONNECTED':<10} {'TYPE':<5} {'ACKED REVISION':<14} NACK")
        for node, p in proxies.items():
            for t, s in p.get("types", {}).items():
                nack = s.get("nack")
                lines.append(
                    f"{node:<32} {('yes' if p['connected'] else 'no'):<10} {t:<5} {s.get('ackedRevision', '')[:12]:<14} "
                    + (f"{nack['revision'][:12]}: {nack['message']}" if nack else "")
                )
    for node, p in proxies.items():  # the service probes' verdicts (HDS): only what takes endpoints out
        health = p.get("health") or {}
        failing = [port for port, ok in health.get("ports", {}).items() if not ok]
        if health and not health.get("envoy", True):
            lines.append(f"unhealthy: {node}: Envoy not ready (every inbound out of its services' endpoints)")
        elif failing:
            lines.append(f"unhealthy: {node}: service probe failing on workload port {', '.join(failing)}")
    # File names, messages and node ids came from pushers and proxies: one line each, as text.
    return "\n".join(map(escape_control, lines))


@click.command("status")
@click.option("--server", default="http://127.0.0.1:5681", show_default=True, help="The control plane's HTTP API.")
@format_option
def status_command(server: str, fmt: str) -> None:
    """What the running server applies and attempted, each proxy's ACK/NACK per type, and the
    proxies whose service probes fail."""
    doc = fetch_json(server, "/status")
    click.echo(json.dumps(doc, indent=2) if fmt == "json" else status_text(doc))
