"""mTLS pieces: SDS secrets, and the TLS transport sockets of inbounds and outbound clusters.

Names follow Kuma: `identity_cert:secret:<mesh>` (the proxy's certificate and key) and
`mesh_ca:secret:<mesh>` (the CAs it trusts). Both are delivered over SDS on the ADS stream,
so a certificate renewal changes only those two resources and no connection is dropped.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import wrappers_pb2

from reconciler.ca.provider import ProxyTls, spiffe_id
from reconciler.envoy_builders import ads_source, pack
from reconciler.xds.resources import SECRET, XdsResource, resource

__all__ = ["identity_secret_name", "mesh_ca_secret_name", "secrets", "upstream_tls", "downstream_tls", "ALPN"]

ALPN = "kuma"
"""Kuma marks mesh mTLS connections with this ALPN value."""


def identity_secret_name(mesh: str) -> str:
    return f"identity_cert:secret:{mesh}"


def mesh_ca_secret_name(mesh: str) -> str:
    return f"mesh_ca:secret:{mesh}"


def secrets(tls: ProxyTls) -> list[XdsResource]:
    identity = secret_pb2.Secret(
        name=identity_secret_name(tls.mesh),
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_bytes=tls.cert_pem),
            private_key=base_pb2.DataSource(inline_bytes=tls.key_pem),
        ),
    )
    ca = secret_pb2.Secret(
        name=mesh_ca_secret_name(tls.mesh),
        validation_context=common_pb2.CertificateValidationContext(trusted_ca=base_pb2.DataSource(inline_bytes=tls.trust_pem)),
    )
    return [resource(SECRET, identity.name, identity), resource(SECRET, ca.name, ca)]


def _sds(name: str) -> secret_pb2.SdsSecretConfig:
    return secret_pb2.SdsSecretConfig(name=name, sds_config=ads_source())


def _common(mesh: str, sans: list[string_pb2.StringMatcher]) -> tls_pb2.CommonTlsContext:
    return tls_pb2.CommonTlsContext(
        tls_certificate_sds_secret_configs=[_sds(identity_secret_name(mesh))],
        combined_validation_context=tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
            default_validation_context=common_pb2.CertificateValidationContext(
                match_typed_subject_alt_names=[
                    common_pb2.SubjectAltNameMatcher(san_type=common_pb2.SubjectAltNameMatcher.URI, matcher=san) for san in sans
                ]
            ),
            validation_context_sds_secret_config=_sds(mesh_ca_secret_name(mesh)),
        ),
    )


def upstream_tls(mesh: str, service: str, identities: tuple[str, ...] = ()) -> base_pb2.TransportSocket:
    """Client side towards another proxy: present our certificate, require one of the SPIFFE
    ids the destination's proxies present."""
    names = identities or (spiffe_id(mesh, service),)
    common = _common(mesh, [string_pb2.StringMatcher(exact=n) for n in names])
    common.alpn_protocols.append(ALPN)
    context = tls_pb2.UpstreamTlsContext(common_tls_context=common, sni=f"{service}{{mesh={mesh}}}")
    return base_pb2.TransportSocket(name="envoy.transport_sockets.tls", typed_config=pack(context))


def downstream_tls(mesh: str, trust_domains: tuple[str, ...] = ()) -> base_pb2.TransportSocket:
    """Server side of an inbound: require a client certificate of one of the mesh's trust
    domains (who may call is MeshTrafficPermission's business)."""
    context = tls_pb2.DownstreamTlsContext(
        common_tls_context=_common(mesh, [string_pb2.StringMatcher(prefix=f"spiffe://{d}/") for d in (trust_domains or (mesh,))]),
        require_client_certificate=wrappers_pb2.BoolValue(value=True),
    )
    return base_pb2.TransportSocket(name="envoy.transport_sockets.tls", typed_config=pack(context))
