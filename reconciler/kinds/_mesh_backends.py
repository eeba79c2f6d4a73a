"""A Mesh's logging, tracing and metrics backends (Kuma v2.14 validator rules).

`check_prometheus_conf` also serves the Dataplane, whose metrics override uses the same conf.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.checks import enumerate_list, get
from reconciler.errors import Path, Violation, Violations
from reconciler.gocompat.net import parse_request_uri, split_host_port
from reconciler.gocompat.regexp import go_regexp_error
from reconciler.kinds._protojson import check_port_number, enum_index, names_hint, number, quote, text

__all__ = ["check_logging", "check_tracing", "check_metrics", "check_prometheus_conf"]

ROOT = Path()
_ZIPKIN_API_VERSIONS = ("httpJsonV1", "httpJson", "httpProto")
_TLS_MODES = ("activeMTLSBackend", "providedTLS", "disabled")


def _check_backend_names(section: Any, path: Path, chosen: str, what: str) -> list[Violation]:
    """Backend names are unique, and `chosen` (defaultBackend / enabledBackend) names one of them."""
    used: list[str] = []
    out = []
    for bpath, backend in enumerate_list(get(section, "backends"), path.field("backends")):
        name = text(get(backend, "name"))
        if name in used:
            out.append(Violation(bpath.field("name"), f"{quote(name)} name is already used for another backend"))
        used.append(name)
    choice = text(get(section, chosen))
    if choice and choice not in used:
        out.append(Violation(path.field(chosen), f"has to be set to one of the {what}" + names_hint(used)))
    return out


def check_logging(logging: Any) -> list[Violation]:
    path = ROOT.field("logging")
    out = Violations()
    backends = get(logging, "backends")
    for bpath, backend in enumerate_list(backends, path.field("backends")):
        if not text(get(backend, "name")):
            out.add(bpath.field("name"), "cannot be empty")
        kind = get(backend, "type")
        conf = get(backend, "conf")
        where = bpath.field("conf")
        if kind == "file":
            if not text(get(conf, "path")):
                out.add(where.field("path"), "cannot be empty")
        elif kind == "tcp":
            address = text(get(conf, "address"))
            if not address:
                out.add(where.field("address"), "cannot be empty")
            else:
                parts = split_host_port(address)
                if parts is None or not parts[0] or not parts[1]:
                    out.add(where.field("address"), "has to be in format of HOST:PORT")
        elif isinstance(kind, str) or kind is None:
            out.add(bpath.field("type"), 'unknown backend type. Available backends: "tcp", "file"')
    out.extend(_check_backend_names(logging, path, "defaultBackend", "logging backend in mesh"))
    return list(out)


def check_tracing(tracing: Any) -> list[Violation]:
    path = ROOT.field("tracing")
    out = Violations()
    backends = get(tracing, "backends")
    for bpath, backend in enumerate_list(backends, path.field("backends")):
        if not text(get(backend, "name")):
            out.add(bpath.field("name"), "cannot be empty")
        sampling = number(get(backend, "sampling"))
        if sampling is not None and not 0.0 <= sampling <= 100.0:
            out.add(bpath.field("sampling"), "has to be in [0.0 - 100.0] range")
        kind = get(backend, "type")
        conf = get(backend, "conf")
        if kind == "zipkin":
            out.extend(_check_zipkin(conf, bpath.field("conf")))
        elif kind == "datadog":
            if not text(get(conf, "address")):
                out.add(bpath.field("conf").field("address"), "cannot be empty")
            out.extend(check_port_number(get(conf, "port"), bpath.field("conf").field("port")))
        elif isinstance(kind, str) or kind is None:
            out.add(bpath.field("type"), 'unknown backend type. Available backends: "zipkin", "datadog"')
    out.extend(_check_backend_names(tracing, path, "defaultBackend", "tracing backend in mesh"))
    return list(out)


def _check_zipkin(conf: Any, path: Path) -> list[Violation]:
    out = []
    api_version = text(get(conf, "apiVersion"))
    if api_version and api_version not in _ZIPKIN_API_VERSIONS:
        out.append(Violation(path.field("apiVersion"), "has invalid value. Allowed values: " + ", ".join(_ZIPKIN_API_VERSIONS)))
    url = text(get(conf, "url"))
    if not url:
        out.append(Violation(path.field("url"), "cannot be empty"))
        return out
    accepted, port = parse_request_uri(url)
    if not accepted:
        out.append(Violation(path.field("url"), "invalid URL: write an absolute URL such as http://zipkin:9411/api/v2/spans"))
    elif not port:
        out.append(Violation(path.field("url"), "port has to be explicitly specified (e.g. http://zipkin:9411/api/v2/spans)"))
    return out


def check_metrics(metrics: Any) -> list[Violation]:
    path = ROOT.field("metrics")
    out = Violations()
    backends = get(metrics, "backends")
    for bpath, backend in enumerate_list(backends, path.field("backends")):
        kind = get(backend, "type")
        if kind == "prometheus":
            out.extend(check_prometheus_conf(get(backend, "conf"), bpath.field("conf")))
        elif isinstance(kind, str) or kind is None:
            out.add(bpath.field("type"), 'unknown backend type. Available backends: "prometheus"')
    out.extend(_check_backend_names(metrics, path, "enabledBackend", "backends in the mesh"))
    return list(out)


def check_prometheus_conf(conf: Any, path: Path) -> list[Violation]:
    """A Prometheus metrics backend's conf, in a Mesh or a Dataplane (Kuma's validatePrometheusConfig)."""
    if conf is not None and not isinstance(conf, Mapping):
        return []
    skip_mtls = get(conf, "skipMTLS")
    tls = get(conf, "tls")
    if isinstance(skip_mtls, bool) and isinstance(tls, Mapping):
        mode = enum_index(tls.get("mode"), _TLS_MODES)
        agrees = (not skip_mtls and mode == 0) or (skip_mtls and mode == 2)
        if mode is not None and not agrees:
            return [
                Violation(
                    path,
                    "skipMTLS and tls configuration cannot be defined together: skipMTLS is deprecated, keep only tls.mode "
                    "(skipMTLS: true is tls.mode: disabled, skipMTLS: false is tls.mode: activeMTLSBackend)",
                )
            ]
    regex = get(conf, "envoy", "filterRegex")
    if isinstance(regex, str):
        problem = go_regexp_error(regex)
        if problem is not None:
            return [Violation(path.field("envoy").field("filterRegex"), f"provided regexp isn't correct: {problem}")]
    out = []
    seen: set[str] = set()
    for apath, entry in enumerate_list(get(conf, "aggregate"), path.field("aggregate")):
        name = text(get(entry, "name"))
        if name in seen:
            out.append(Violation(apath.field("name"), f"duplicate entry: {name}, values have to be unique"))
            continue
        seen.add(name)
    return out
