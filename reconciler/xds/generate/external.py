"""MeshExternalService clusters: how a sidecar reaches a destination outside the mesh.

Kuma v2.14 sends MeshExternalService traffic through a zone egress and builds this cluster
there (pkg/xds/generator/egress, `ProvidedCustomEndpointCluster` and
`MeshExternalServiceClientSideTLS`); here the sidecar builds it itself, with the same rules:

- `endpoints` that are all IP addresses: an EDS cluster and its ClusterLoadAssignment; any
  hostname among them: a STRICT_DNS cluster with the endpoints inline, resolved by Envoy.
  Each `priority` is an Envoy priority level (locality sub-zone `priority-<n>`).
- `match.protocol`: http → HTTP/1.1 to the endpoints, http2 and grpc → HTTP/2, tcp → bytes.
- `tls.enabled`: an UpstreamTlsContext. SNI is `verification.serverName`, else the first
  endpoint's address when it is a hostname. `mode` (default Secured): Secured checks the CA
  (`caCert`, else the system CA bundle) and the SANs — the SNI or first endpoint address as a
  DNS or IP SAN, plus `subjectAltNames` (Exact / Prefix) — any of them; SkipSAN checks the CA
  only; SkipCA and SkipAll check nothing (SkipAll also sends no client certificate).
  `version` min/max and `allowRenegotiation` are copied as they are.
- The CA and the client certificate travel over SDS as `mes-<name>-ca` and
  `mes-<name>-client-cert`, so only proxies whose config names this cluster get them. This
  is not the mesh's mTLS: the mesh identity certificate is never presented here.
- A Secret that a data source names but the mesh lacks leaves the cluster without endpoints:
  requests fail (503) rather than leave unverified.

Policy hooks run on the cluster and the load assignment as on any outbound cluster, except
MeshTLS, whose TLS parameters are for the mesh's own mTLS.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import wrappers_pb2

from reconciler.envoy_builders import ads_source, duration, pack, socket_address, upstream_protocol_options
from reconciler.mesh.external import SECRET_DATA
from reconciler.mesh.routing import BackendCluster
from reconciler.policies.core.plugin import HookContext
from reconciler.xds.generate import names
from reconciler.xds.generate.hooks import apply_hooks
from reconciler.xds.resources import CLUSTER, ENDPOINT, SECRET, XdsResource, resource

__all__ = ["external_resources", "ca_secret_name", "client_cert_secret_name", "SYSTEM_CA_PATH", "CONNECT_TIMEOUT"]

CONNECT_TIMEOUT = 5.0
"""Connect timeout when no MeshTimeout sets one (Kuma's default)."""

SYSTEM_CA_PATH = "/etc/ssl/certs/ca-certificates.crt"
"""The CA bundle a Secured service without `caCert` is checked against (Debian's, the first
path kuma-dp looks for; Kuma takes the one kuma-dp reports)."""

NOT_FOR_EXTERNAL = frozenset({"MeshTLS"})
"""Policy kinds whose hooks do not apply to a MeshExternalService cluster."""

_TLS_VERSIONS = {
    "TLSAuto": common_pb2.TlsParameters.TLS_AUTO,
    "TLS10": common_pb2.TlsParameters.TLSv1_0,
    "TLS11": common_pb2.TlsParameters.TLSv1_1,
    "TLS12": common_pb2.TlsParameters.TLSv1_2,
    "TLS13": common_pb2.TlsParameters.TLSv1_3,
}
_TLS_SOCKET = "envoy.transport_sockets.tls"


def ca_secret_name(service: str) -> str:
    return f"mes-{service}-ca"


def client_cert_secret_name(service: str) -> str:
    return f"mes-{service}-client-cert"


def external_resources(backend: BackendCluster, ctx: HookContext) -> list[XdsResource]:
    """The cluster of a MeshExternalService, its endpoints when they go over EDS, and the SDS
    secrets its TLS context names."""
    return list(_resources(backend, ctx))


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _bytes(source: Any) -> bytes | None:
    """The bytes of a data source: a resolved Secret, `inline` (base64) or `inlineString`."""
    if not isinstance(source, Mapping):
        return None
    if source.get("secret"):
        data = source.get(SECRET_DATA)
        return bytes(data) if isinstance(data, (bytes, bytearray)) else None
    if source.get("inline") is not None:
        try:
            return base64.b64decode(str(source["inline"]), validate=True)
        except (binascii.Error, ValueError):
            return None
    if source.get("inlineString") is not None:
        return str(source["inlineString"]).encode()
    return None


def _load_assignment(name: str, endpoints: tuple[Mapping[str, Any], ...]) -> endpoint_pb2.ClusterLoadAssignment:
    by_priority: dict[int, list[Mapping[str, Any]]] = {}
    for e in endpoints:
        by_priority.setdefault(int(e.get("priority") or 0), []).append(e)
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                locality=base_pb2.Locality(sub_zone=f"priority-{priority}"),
                priority=priority,
                load_balancing_weight=wrappers_pb2.UInt32Value(value=1),
                lb_endpoints=[
                    endpoint_components_pb2.LbEndpoint(
                        endpoint=endpoint_components_pb2.Endpoint(address=socket_address(str(e["address"]), int(e["port"]))),
                        load_balancing_weight=wrappers_pb2.UInt32Value(value=1),
                    )
                    for e in sorted(group, key=lambda e: (str(e["address"]), int(e["port"])))
                ],
            )
            for priority, group in sorted(by_priority.items())
        ],
    )


def _sds(name: str) -> secret_pb2.SdsSecretConfig:
    return secret_pb2.SdsSecretConfig(name=name, sds_config=ads_source())


def _san_matchers(names: list[tuple[str, str]]) -> list[common_pb2.SubjectAltNameMatcher]:
    """Each (Exact|Prefix, value) as a DNS SAN, then each as an IP SAN."""
    out = []
    for san_type in (common_pb2.SubjectAltNameMatcher.DNS, common_pb2.SubjectAltNameMatcher.IP_ADDRESS):
        for kind, value in names:
            matcher = string_pb2.StringMatcher(prefix=value) if kind == "Prefix" else string_pb2.StringMatcher(exact=value)
            out.append(common_pb2.SubjectAltNameMatcher(san_type=san_type, matcher=matcher))
    return out


def _missing_secret(tls: Mapping[str, Any]) -> bool:
    """A data source Kuma would load names a Secret the mesh does not have."""
    verification = tls.get("verification") or {}
    sources = [verification.get("caCert")]
    if verification.get("clientCert") is not None and verification.get("clientKey") is not None:
        sources += [verification.get("clientCert"), verification.get("clientKey")]
    return any(isinstance(s, Mapping) and s.get("secret") and _bytes(s) is None for s in sources)


def _tls(service: str, tls: Mapping[str, Any], first_address: str) -> tuple[base_pb2.TransportSocket, list[XdsResource]]:
    verification = tls.get("verification") or {}
    mode = verification.get("mode") or "Secured"
    hostname = "" if _is_ip(first_address) else first_address
    server_name = str(verification.get("serverName") or "") or hostname
    sans = [(str(s.get("type") or "Exact"), str(s.get("value", ""))) for s in verification.get("subjectAltNames") or ()]
    ca = _bytes(verification.get("caCert"))
    cert = key = None
    if verification.get("clientCert") is not None and verification.get("clientKey") is not None:
        cert, key = _bytes(verification.get("clientCert")), _bytes(verification.get("clientKey"))
    system_ca, check_names = True, True
    if mode == "SkipSAN":
        server_name, sans, check_names = "", [], False
    elif mode == "SkipCA":
        ca, system_ca = None, False
    elif mode == "SkipAll":
        ca, system_ca, cert, key = None, False, None, None
        server_name, sans, check_names = "", [], False
    sni = server_name or hostname

    secrets: list[XdsResource] = []
    common = tls_pb2.CommonTlsContext()
    if cert is not None and key is not None:
        name = client_cert_secret_name(service)
        secret = secret_pb2.Secret(
            name=name,
            tls_certificate=common_pb2.TlsCertificate(
                certificate_chain=base_pb2.DataSource(inline_bytes=cert), private_key=base_pb2.DataSource(inline_bytes=key)
            ),
        )
        secrets.append(resource(SECRET, name, secret))
        common.tls_certificate_sds_secret_configs.append(_sds(name))
    if ca is not None or system_ca:
        matchers = _san_matchers([("Exact", sni or first_address)]) + _san_matchers(sans) if check_names else []
        if ca is not None:
            name = ca_secret_name(service)
            secret = secret_pb2.Secret(
                name=name, validation_context=common_pb2.CertificateValidationContext(trusted_ca=base_pb2.DataSource(inline_bytes=ca))
            )
            secrets.append(resource(SECRET, name, secret))
            common.combined_validation_context.CopyFrom(
                tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
                    default_validation_context=common_pb2.CertificateValidationContext(match_typed_subject_alt_names=matchers),
                    validation_context_sds_secret_config=_sds(name),
                )
            )
        else:
            common.validation_context.CopyFrom(
                common_pb2.CertificateValidationContext(
                    trusted_ca=base_pb2.DataSource(filename=SYSTEM_CA_PATH), match_typed_subject_alt_names=matchers
                )
            )
    version = tls.get("version") or {}
    if version.get("min") in _TLS_VERSIONS:
        common.tls_params.tls_minimum_protocol_version = _TLS_VERSIONS[version["min"]]
    if version.get("max") in _TLS_VERSIONS:
        common.tls_params.tls_maximum_protocol_version = _TLS_VERSIONS[version["max"]]
    context = tls_pb2.UpstreamTlsContext(common_tls_context=common, sni=sni, allow_renegotiation=bool(tls.get("allowRenegotiation")))
    return base_pb2.TransportSocket(name=_TLS_SOCKET, typed_config=pack(context)), secrets


@lru_cache(maxsize=16384)
def _resources(backend: BackendCluster, ctx: HookContext) -> tuple[XdsResource, ...]:
    spec = backend.external or {}
    tls = spec.get("tls") if isinstance(spec.get("tls"), Mapping) else {}
    assert isinstance(tls, Mapping)
    enabled = bool(tls.get("enabled"))
    endpoints: tuple[Mapping[str, Any], ...] = tuple(e for e in spec.get("endpoints") or () if isinstance(e, Mapping))
    if enabled and _missing_secret(tls):
        endpoints = ()
    confs = {k: v for k, v in backend.confs.items() if k not in NOT_FOR_EXTERNAL}

    cluster = cluster_pb2.Cluster(
        name=backend.name,
        alt_stat_name=names.stat_prefix(backend.name),
        connect_timeout=duration(CONNECT_TIMEOUT),
        typed_extension_protocol_options=upstream_protocol_options(backend.protocol),
    )
    assignment = _load_assignment(backend.name, endpoints)
    apply_hooks("load_assignment", assignment, confs, ctx)
    out: list[XdsResource] = []
    if all(_is_ip(str(e["address"])) for e in endpoints):
        cluster.type = cluster_pb2.Cluster.EDS
        cluster.eds_cluster_config.CopyFrom(cluster_pb2.Cluster.EdsClusterConfig(eds_config=ads_source()))
        out.append(resource(ENDPOINT, backend.name, assignment))
    else:
        cluster.type = cluster_pb2.Cluster.STRICT_DNS
        cluster.dns_lookup_family = cluster_pb2.Cluster.V4_PREFERRED
        cluster.load_assignment.CopyFrom(assignment)
    if enabled:
        socket, secrets = _tls(backend.service_name, tls, str(endpoints[0]["address"]) if endpoints else "")
        cluster.transport_socket.CopyFrom(socket)
        out.extend(secrets)
    apply_hooks("cluster", cluster, confs, ctx)
    return (resource(CLUSTER, backend.name, cluster), *out)
