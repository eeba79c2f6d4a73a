"""Per-proxy mTLS material: the CA a mesh signs with and what it trusts, each proxy's
certificate, reuse until 80% of its life (the end of its window), and the previous CA trusted while proxies switch."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography import x509

from reconciler.ca.authority import Authority, CaError
from reconciler.ca.identity import identity_for
from reconciler.ca.provider import DEFAULT_CERT_VALIDITY, CertificateProvider, MeshTls
from reconciler.ca.store import CaStore
from reconciler.model import Resource
from tests.ca.conftest import Inbound, Proxy

WEB = Proxy("web-1", inbounds=(Inbound({"kuma.io/service": "web", "version": "v2"}), Inbound({"kuma.io/service": "api"})))


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _mesh(mtls: dict[str, Any] | None, name: str = "default") -> Resource:
    return Resource.create("Mesh", name, {"mtls": mtls} if mtls is not None else {}, mesh="", flat=True)


def _builtin(enabled: str = "ca-1", **backend: Any) -> dict[str, Any]:
    return {"enabledBackend": enabled, "backends": [{"name": enabled, "type": "builtin", **backend}]}


def _uris(pem: bytes) -> list[str]:
    cert = x509.load_pem_x509_certificate(pem)
    return list(
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.UniformResourceIdentifier)
    )


def test_without_mtls_or_identities_a_mesh_has_no_tls() -> None:
    assert CertificateProvider().mesh_tls(_mesh(None), {}) is None
    assert CertificateProvider().mesh_tls(_mesh({"enabledBackend": ""}), {}) is None


def test_a_builtin_ca_signs_strict_with_the_lifetime_of_dp_cert() -> None:
    provider = CertificateProvider(CaStore(), Clock())
    tls = provider.mesh_tls(_mesh(_builtin(dpCert={"rotation": {"expiration": "2h"}})), {})
    assert tls is not None and tls.authority is not None
    assert (tls.mesh, tls.mode, tls.validity) == ("default", "STRICT", 7200.0)
    assert tls.trust_pem == tls.authority.cert_pem


@pytest.mark.parametrize(("mode", "expected"), [("PERMISSIVE", "PERMISSIVE"), ("1", "PERMISSIVE"), ("0", "STRICT"), (None, "STRICT")])
def test_the_mode_is_a_name_or_a_protobuf_number(mode: str | None, expected: str) -> None:
    tls = CertificateProvider(CaStore(), Clock()).mesh_tls(_mesh(_builtin(mode=mode)), {})
    assert tls is not None and tls.mode == expected


def test_an_enabled_backend_that_is_not_declared_is_an_error() -> None:
    mesh = _mesh({"enabledBackend": "ca-9", "backends": [{"name": "ca-1", "type": "builtin"}]})
    with pytest.raises(CaError, match='mesh default: enabledBackend "ca-9" is not among mtls.backends'):
        CertificateProvider().mesh_tls(mesh, {})


def test_a_provided_ca_comes_from_its_data_sources(root: Authority) -> None:
    secret = Resource.create("Secret", "ca-key", {"data": base64.b64encode(root.key_pem()).decode()})
    conf = {"cert": {"inlineString": root.cert_pem.decode()}, "key": {"secret": "ca-key"}}
    mesh = _mesh({"enabledBackend": "given", "backends": [{"name": "given", "type": "provided", "conf": conf}]})
    tls = CertificateProvider(CaStore(), Clock()).mesh_tls(mesh, {"ca-key": secret})
    assert tls is not None and tls.authority is not None and tls.authority.fingerprint == root.fingerprint
    assert tls.validity == DEFAULT_CERT_VALIDITY


def test_a_provided_ca_whose_secret_is_missing_names_it(root: Authority) -> None:
    conf = {"cert": {"inline": base64.b64encode(root.cert_pem).decode()}, "key": {"secret": "nope"}}
    mesh = _mesh({"enabledBackend": "given", "backends": [{"name": "given", "type": "provided", "conf": conf}]})
    with pytest.raises(CaError, match='mesh default CA given key: Secret "nope" does not exist in the mesh'):
        CertificateProvider().mesh_tls(mesh, {})


def test_a_proxy_certificate_names_each_service_and_carries_its_other_tags() -> None:
    provider = CertificateProvider(CaStore(), Clock())
    tls = provider.mesh_tls(_mesh(_builtin()), {})
    assert tls is not None
    proxy_tls = provider.for_dataplane(tls, WEB)
    assert proxy_tls is not None
    assert proxy_tls.spiffe_ids == ("spiffe://default/api", "spiffe://default/web")
    assert _uris(proxy_tls.cert_pem) == ["spiffe://default/api", "spiffe://default/web", "kuma://version/v2"]
    assert (proxy_tls.mode, proxy_tls.trust_domains, proxy_tls.trust_pem) == ("STRICT", ("default",), tls.trust_pem)


def test_a_gateway_is_named_by_its_service_tag() -> None:
    provider = CertificateProvider(CaStore(), Clock())
    tls = provider.mesh_tls(_mesh(_builtin()), {})
    assert tls is not None
    proxy_tls = provider.for_dataplane(tls, Proxy("edge", gateway={"tags": {"kuma.io/service": "edge-gw"}}))
    assert proxy_tls is not None and proxy_tls.spiffe_ids == ("spiffe://default/edge-gw",)


def test_a_certificate_is_reused_until_80_percent_of_its_life_then_renewed() -> None:
    clock = Clock()  # its time starts a window of the 1000 s certificates below
    provider = CertificateProvider(CaStore(), clock)
    tls = provider.mesh_tls(_mesh(_builtin(dpCert={"rotation": {"expiration": "1000s"}})), {})
    assert tls is not None
    first = provider.for_dataplane(tls, WEB)
    assert first is not None
    renew_at = provider.next_renewal()
    assert renew_at == clock.now + 0.8 * 1000.0
    clock.now = renew_at - 1
    again = provider.for_dataplane(tls, WEB)
    assert again is not None and again.cert_pem == first.cert_pem
    clock.now = renew_at
    renewed = provider.for_dataplane(tls, WEB)
    assert renewed is not None and renewed.cert_pem != first.cert_pem


def test_certificates_of_proxies_that_are_gone_are_forgotten() -> None:
    provider = CertificateProvider(CaStore(), Clock())
    tls = provider.mesh_tls(_mesh(_builtin()), {})
    assert tls is not None
    provider.for_dataplane(tls, WEB)
    provider.forget_except({("default", "other")})
    assert provider.next_renewal() is None


def test_the_previous_ca_stays_trusted_for_one_certificate_lifetime() -> None:
    clock = Clock()
    provider = CertificateProvider(CaStore(), clock)
    first = provider.mesh_tls(_mesh(_builtin("ca-1", dpCert={"rotation": {"expiration": "1h"}})), {})
    clock.now += 60
    second = provider.mesh_tls(_mesh(_builtin("ca-2", dpCert={"rotation": {"expiration": "1h"}})), {})
    assert first is not None and first.authority is not None and second is not None and second.authority is not None
    assert second.trust_pem == second.authority.cert_pem + first.authority.cert_pem
    # One lifetime after the switch, until the certificate window (0.8 h) then running ends:
    # replicas rebuild at window ends, so they all drop it at the same rebuild.
    clock.now += 3600
    still = provider.mesh_tls(_mesh(_builtin("ca-2", dpCert={"rotation": {"expiration": "1h"}})), {})
    assert still is not None and still.trust_pem == second.trust_pem
    clock.now = 1_800_000_000.0 + 2 * 2880.0
    later = provider.mesh_tls(_mesh(_builtin("ca-2", dpCert={"rotation": {"expiration": "1h"}})), {})
    assert later is not None and later.trust_pem == second.authority.cert_pem


def test_a_mesh_identity_gives_its_spiffe_id_and_signs_with_its_own_ca() -> None:
    provider = CertificateProvider(CaStore(), Clock())
    identity = Resource.create(
        "MeshIdentity", "all", {"provider": {"type": "Bundled", "bundled": {"autogenerate": {"enabled": True}}}}, mesh="default"
    )
    tls = provider.mesh_tls(_mesh(None), {}, [identity])
    assert isinstance(tls, MeshTls) and tls.authority is None and tls.mode == "PERMISSIVE"
    ca, _ = tls.identity_cas["all"]
    assert tls.trust_pem == ca.cert_pem
    proxy = Proxy("web-1", labels={"kuma.io/workload": "shop"}, inbounds=WEB.inbounds)
    proxy_tls = provider.for_dataplane(tls, proxy, identity_for(proxy, [identity]), ("default.default.mesh.local",))
    assert proxy_tls is not None
    assert proxy_tls.spiffe_ids == ("spiffe://default.default.mesh.local/workload/shop",)
    assert proxy_tls.trust_domains == ("default.default.mesh.local",)
    # Without an identity and without a mesh CA there is nothing to sign with.
    assert provider.for_dataplane(tls, proxy) is None
