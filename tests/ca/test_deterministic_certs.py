"""Workload certificates are the same on every replica: a function of the CA key, the proxy and
the wall-clock window (ca/derivation.py). A new window gives a new key and serial; the
provider renews once per window, at its end, and never reissues the same certificate in a loop."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from reconciler.ca.authority import Authority, WorkloadCertificate, issue_workload, load_authority
from reconciler.ca.derivation import window_at
from reconciler.ca.identity import identity_for
from reconciler.ca.provider import CertificateProvider, ProxyTls
from reconciler.ca.store import CaStore
from reconciler.model import Resource
from tests.ca.conftest import Inbound, Proxy
from tests.support import self_signed_ec_ca

DAY = 24 * 3600.0
WINDOW = window_at(1_800_000_000.0, DAY)
"""A window of the default 24h certificates (19.2 hours long)."""
IDS = ["spiffe://default/web"]
TAGS = ["kuma://version/v2"]
WEB = Proxy("web-1", inbounds=(Inbound({"kuma.io/service": "web", "version": "v2"}),))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _issue(ca: Authority, now: float, holder: str = "default/web-1", ids: list[str] = IDS) -> WorkloadCertificate:
    return issue_workload(ca, ids, TAGS, DAY, now=now, holder=holder)


def _parsed(cert: WorkloadCertificate) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert.cert_pem)


@pytest.fixture(scope="module")
def ec_root() -> Authority:
    """A provided ECDSA P-256 CA: its signatures are random unless asked to be deterministic."""
    return load_authority("given", *self_signed_ec_ca("provided ecdsa"))


@pytest.mark.parametrize("ca_name", ["root", "ec_root"])
def test_the_same_proxy_in_the_same_window_gets_the_same_bytes_from_any_copy_of_the_ca(
    ca_name: str, request: pytest.FixtureRequest
) -> None:
    ca: Authority = request.getfixturevalue(ca_name)
    # Another replica reads the same CA from its own copy of the PEM files, hours later.
    replica = load_authority(ca.name, ca.cert_pem, ca.key_pem())
    first = _issue(ca, WINDOW.start + 5)
    later = _issue(replica, WINDOW.end - 1)
    assert (later.cert_pem, later.key_pem, later.renew_at) == (first.cert_pem, first.key_pem, first.renew_at)


@pytest.mark.parametrize("ca_name", ["root", "ec_root"])
def test_the_certificate_verifies_against_the_ca_and_carries_the_spiffe_ids(ca_name: str, request: pytest.FixtureRequest) -> None:
    ca: Authority = request.getfixturevalue(ca_name)
    cert = _issue(ca, WINDOW.start + 5, ids=["spiffe://default/api", "spiffe://default/web"])
    parsed = _parsed(cert)
    parsed.verify_directly_issued_by(ca.certificate)
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://default/api", "spiffe://default/web", "kuma://version/v2"]
    key = serialization.load_pem_private_key(cert.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    assert key.public_key().public_numbers() == parsed.public_key().public_numbers()  # type: ignore[union-attr]
    # The key really signs: a peer checking the handshake signature against the certificate accepts it.
    public = parsed.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(key.sign(b"handshake", ec.ECDSA(hashes.SHA256())), b"handshake", ec.ECDSA(hashes.SHA256()))


def test_validity_starts_at_the_window_not_at_the_moment_of_issue(root: Authority) -> None:
    cert = _issue(root, WINDOW.start + 3 * 3600)
    parsed = _parsed(cert)
    assert WINDOW.length == 0.8 * DAY and WINDOW.start % WINDOW.length == 0
    assert parsed.not_valid_before_utc.timestamp() == cert.not_before == WINDOW.start - 60  # backdated a minute
    assert parsed.not_valid_after_utc.timestamp() == cert.not_after == WINDOW.start + DAY
    assert cert.renew_at == WINDOW.end  # with a fifth of its life left


def test_the_next_window_gives_a_new_key_and_serial(root: Authority) -> None:
    this, following = _issue(root, WINDOW.end - 1), _issue(root, WINDOW.end)
    assert following.key_pem != this.key_pem
    assert _parsed(following).serial_number != _parsed(this).serial_number
    assert following.not_before == this.not_before + WINDOW.length
    # Replaced before it expires: the old one is still valid when the new one is served.
    assert this.not_after > following.renew_at - WINDOW.length


def test_two_proxies_with_the_same_services_do_not_share_a_key(root: Authority) -> None:
    one, other = _issue(root, WINDOW.start, "default/web-1"), _issue(root, WINDOW.start, "default/web-2")
    assert one.key_pem != other.key_pem
    assert _parsed(one).serial_number != _parsed(other).serial_number


def test_another_ca_key_derives_other_keys(root: Authority, other_root: Authority) -> None:
    assert _issue(root, WINDOW.start).key_pem != _issue(other_root, WINDOW.start).key_pem


def test_an_rsa_signature_checks_with_pkcs1v15(root: Authority) -> None:
    parsed = _parsed(_issue(root, WINDOW.start))
    public = root.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(parsed.signature, parsed.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256())


def _mesh_with_mtls(expiration: str = "24h") -> Resource:
    backend = {"name": "ca-1", "type": "builtin", "dpCert": {"rotation": {"expiration": expiration}}}
    return Resource.create("Mesh", "default", {"mtls": {"enabledBackend": "ca-1", "backends": [backend]}}, mesh="", flat=True)


def _served(provider: CertificateProvider, mesh: Resource, identities: list[Resource] | None = None, proxy: Proxy = WEB) -> ProxyTls:
    tls = provider.mesh_tls(mesh, {}, identities or [])
    assert tls is not None
    identity = identity_for(proxy, identities) if identities else None
    served = provider.for_dataplane(tls, proxy, identity)
    assert served is not None
    return served


def test_two_replicas_sharing_the_ca_state_serve_the_same_secret(tmp_path: Path) -> None:
    mesh = _mesh_with_mtls()
    first = _served(CertificateProvider(CaStore(tmp_path), Clock(WINDOW.start + 60)), mesh)
    # The other replica (or this one after a restart) starts an hour later in the same window.
    second = _served(CertificateProvider(CaStore(tmp_path), Clock(WINDOW.start + 3600)), mesh)
    assert (second.cert_pem, second.key_pem, second.trust_pem) == (first.cert_pem, first.key_pem, first.trust_pem)


def test_mesh_identity_certificates_are_the_same_on_every_replica(tmp_path: Path) -> None:
    bundled = {"autogenerate": {"enabled": True}, "certificateParameters": {"expiry": "24h"}}
    identity = Resource.create("MeshIdentity", "all", {"provider": {"type": "Bundled", "bundled": bundled}}, mesh="default")
    proxy = Proxy("web-1", labels={"kuma.io/workload": "shop"}, inbounds=WEB.inbounds)
    mesh = Resource.create("Mesh", "default", {}, mesh="", flat=True)
    first = _served(CertificateProvider(CaStore(tmp_path), Clock(WINDOW.start + 60)), mesh, [identity], proxy)
    second = _served(CertificateProvider(CaStore(tmp_path), Clock(WINDOW.end - 60)), mesh, [identity], proxy)
    assert first.spiffe_ids == ("spiffe://default.default.mesh.local/workload/shop",)
    assert (second.cert_pem, second.key_pem) == (first.cert_pem, first.key_pem)
    renewed = _served(CertificateProvider(CaStore(tmp_path), Clock(WINDOW.end)), mesh, [identity], proxy)
    assert renewed.key_pem != first.key_pem


def test_renewal_happens_once_per_window_never_in_a_loop() -> None:
    """The control plane rebuilds at `next_renewal()`; each rebuild there must give a new
    certificate and a later renewal time, or the timer would fire again at once."""
    validity = 1000.0
    window = window_at(1_800_000_000.0, validity)
    clock = Clock(window.start + 123)  # a replica that starts in the middle of a window
    provider = CertificateProvider(CaStore(), clock)
    mesh = _mesh_with_mtls("1000s")
    served = [_served(provider, mesh)]
    for _ in range(5):
        due = provider.next_renewal()
        assert due is not None and due > clock.now
        # A proxy registering in between rebuilds too: same certificate, same renewal time.
        clock.now = (clock.now + due) / 2
        assert _served(provider, mesh).cert_pem == served[-1].cert_pem and provider.next_renewal() == due
        clock.now = due  # the renewal timer fires
        served.append(_served(provider, mesh))
        assert served[-2].not_after - clock.now == pytest.approx(0.2 * validity)  # replaced with a fifth of its life left
    assert len({s.cert_pem for s in served}) == len(served)
    assert [s.not_after for s in served] == [window.start + validity + k * 0.8 * validity for k in range(6)]
