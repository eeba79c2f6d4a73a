"""Envoy bootstrap for a dataplane: node identity, admin on loopback, ADS to the control plane,
and HDS (Kuma's service probes, reconciler/xds/hds.py) over the same cluster, as kuma-dp's."""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

__all__ = ["bootstrap", "XdsMode"]

XdsMode = Literal["sotw", "delta"]


def bootstrap(
    *,
    mesh: str,
    name: str,
    cp_host: str,
    cp_port: int,
    admin_port: int = 9901,
    admin_address: str = "127.0.0.1",
    dataplane: str | None = None,
    token: str | None = None,
    mode: XdsMode = "sotw",
    ca_cert: str | None = None,
    cluster: str | None = None,
    ca_cert_pem: str | None = None,
    hds: bool = True,
) -> dict[str, Any]:
    """The bootstrap Envoy starts with; everything else arrives over ADS.

    `dataplane` is the Dataplane resource (YAML or JSON text) of a proxy that registers at
    connect time; `token` is its dataplane token, sent as node metadata `dataplane.token`;
    `ca_cert_pem` (the certificate itself) or `ca_cert` (a PEM file Envoy reads) is the CA
    that verifies the control plane's xDS certificate. TLS is used when either is given, and
    the certificate must name `cp_host` (DNS or IP subject alternative name), as kuma-dp checks.
    `hds`: Envoy also opens Kuma's health-check stream, and the node tells the control plane
    where its admin listens (`dataplane.admin.port`), which HDS probes for Envoy's readiness.
    """
    metadata: dict[str, Any] = {"dataplane.admin.port": str(admin_port), "dataplane.admin.address": admin_address}
    if dataplane is not None:
        metadata["dataplane.resource"] = dataplane
    if token is not None:
        metadata["dataplane.token"] = token
    grpc_service: dict[str, Any] = {"envoy_grpc": {"cluster_name": "ads_cluster"}}
    ads_cluster: dict[str, Any] = {
        "name": "ads_cluster",
        "type": "STRICT_DNS",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "connection_keepalive": {"interval": "15s", "timeout": "5s"},
                    }
                },
            }
        },
        "load_assignment": {
            "cluster_name": "ads_cluster",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": cp_host, "port_value": cp_port}}}}]}],
        },
    }
    if ca_cert is not None or ca_cert_pem is not None:
        trusted_ca = {"inline_string": ca_cert_pem} if ca_cert_pem is not None else {"filename": ca_cert}
        tls_context: dict[str, Any] = {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                "alpn_protocols": ["h2"],
                "validation_context": {
                    "trusted_ca": trusted_ca,
                    "match_typed_subject_alt_names": [
                        {"san_type": "DNS", "matcher": {"exact": cp_host}},
                        {"san_type": "IP_ADDRESS", "matcher": {"exact": cp_host}},
                    ],
                },
            },
        }
        if not _is_ip(cp_host):
            tls_context["sni"] = cp_host  # SNI carries host names only (RFC 6066)
        ads_cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": tls_context}
    config: dict[str, Any] = {
        "node": {"id": f"{mesh}.{name}", "cluster": cluster or name, "metadata": metadata},
        "admin": {"address": {"socket_address": {"address": admin_address, "port_value": admin_port}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if mode == "delta" else "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [grpc_service],
                "set_node_on_first_message_only": True,
            },
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {"clusters": [ads_cluster]},
    }
    if hds:
        config["hds_config"] = {
            "api_type": "GRPC",
            "transport_api_version": "V3",
            "set_node_on_first_message_only": True,
            "grpc_services": [grpc_service],
        }
    return config


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
