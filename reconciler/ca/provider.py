"""Per-proxy mTLS material: which CA a mesh signs with, what it trusts, each proxy's certificate.

`Mesh.spec.mtls` as Kuma documents it: `enabledBackend` names one of `backends`, each
`builtin` (generated, kept in the CA store) or `provided` (certificate and key from data
sources: a mesh Secret, inline bytes, an inline string or a file). mTLS is off when
`enabledBackend` is empty. `mode` is STRICT (default) or PERMISSIVE; `dpCert.rotation.expiration`
sets the certificates' lifetime (default 24h).

Certificates are issued per proxy identity and time window (ca/derivation.py): the same on
every replica and after a restart, reused until their window ends (80% of their lifetime after
its start); `next_renewal()` tells the control plane when to rebuild so they are replaced before
they expire. When the enabled CA changes, the previous CA stays trusted for one certificate
lifetime (until the certificate window in which that lifetime ends is over), so proxies on old
and new certificates keep talking during the switch.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.ca.authority import Authority, CaError, WorkloadCertificate, issue_workload, load_authority, parse_kuma_duration
from reconciler.ca.derivation import window_at
from reconciler.ca.identity import Identity, identity_authority, trusted_bundles
from reconciler.ca.store import CaStore
from reconciler.ca.subject import SERVICE_TAG, ProxySubject
from reconciler.model import Resource

__all__ = ["ProxyTls", "MeshTls", "CertificateProvider", "DEFAULT_CERT_VALIDITY", "spiffe_id"]

DEFAULT_CERT_VALIDITY = 24 * 3600.0
DEFAULT_CA_VALIDITY = 10 * 365 * 86400.0


def spiffe_id(mesh: str, service: str) -> str:
    return f"spiffe://{mesh}/{service}"


@dataclass(frozen=True, slots=True)
class MeshTls:
    """A mesh's signing and trust: its CA (None when only MeshIdentities give certificates),
    what every proxy trusts, and the CA of each Bundled MeshIdentity."""

    mesh: str
    mode: str
    authority: Authority | None
    trust_pem: bytes
    validity: float
    identity_cas: Mapping[str, tuple[Authority, float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProxyTls:
    """What one proxy needs for mTLS: its certificate and key, and the CAs it trusts."""

    mesh: str
    mode: str
    trust_pem: bytes
    cert_pem: bytes
    key_pem: bytes = field(repr=False)
    spiffe_ids: tuple[str, ...]
    not_after: float
    trust_domains: tuple[str, ...] = ()
    """SPIFFE trust domains whose clients an inbound accepts (the mesh's, MeshIdentities', MeshTrusts')."""


def _data_source(source: Mapping[str, Any] | None, secrets: Mapping[str, Resource], what: str) -> bytes:
    if not isinstance(source, Mapping):
        raise CaError(f"{what} is not set")
    if source.get("secret"):
        secret = secrets.get(source["secret"])
        if secret is None:
            raise CaError(f'{what}: Secret "{source["secret"]}" does not exist in the mesh')
        return base64.b64decode(str(secret.spec.get("data") or ""))
    if source.get("inline"):
        return base64.b64decode(str(source["inline"]))
    if source.get("inlineString"):
        return str(source["inlineString"]).encode()
    if source.get("file"):
        try:
            return Path(source["file"]).read_bytes()
        except OSError as e:
            raise CaError(f"{what}: cannot read {source['file']}: {e.strerror}") from None
    raise CaError(f"{what} has no source")


class CertificateProvider:
    """Issues and caches proxy certificates; the only part of generation with a clock."""

    def __init__(self, store: CaStore | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store or CaStore()
        self.clock = clock
        self._certs: dict[tuple[Any, ...], WorkloadCertificate] = {}
        self._lock = threading.Lock()

    def mesh_tls(
        self, mesh: Resource, secrets: Mapping[str, Resource], identities: Iterable[Resource] = (), trusts: Iterable[Resource] = ()
    ) -> MeshTls | None:
        """The mesh's CA and trust bundle; None when neither mTLS nor a MeshIdentity is on."""
        identity_cas = {i.name: identity_authority(i, self.store, secrets) for i in identities if i.mesh == mesh.name}
        extra_trust = [ca.cert_pem for ca, _ in identity_cas.values()] + trusted_bundles(trusts, mesh.name)
        mtls = mesh.spec.get("mtls") or {}
        enabled = mtls.get("enabledBackend")
        if not enabled:
            if not identity_cas:
                return None
            # Proxies with a workload identity use mTLS; plaintext clients still get in.
            return MeshTls(mesh.name, "PERMISSIVE", None, b"".join(extra_trust), DEFAULT_CERT_VALIDITY, identity_cas)
        backend = next((b for b in mtls.get("backends") or () if b.get("name") == enabled), None)
        if backend is None:
            raise CaError(f'mesh {mesh.name}: enabledBackend "{enabled}" is not among mtls.backends')
        conf = backend.get("conf") or {}
        if backend.get("type") == "provided":
            authority = load_authority(
                enabled,
                _data_source(conf.get("cert"), secrets, f"mesh {mesh.name} CA {enabled} cert"),
                _data_source(conf.get("key"), secrets, f"mesh {mesh.name} CA {enabled} key"),
            )
        else:
            ca_cert = conf.get("caCert") or {}
            authority = self.store.builtin(
                mesh.name,
                enabled,
                rsa_bits=int(ca_cert.get("RSAbits") or 2048),
                validity=parse_kuma_duration(ca_cert.get("expiration"), DEFAULT_CA_VALIDITY),
            )
        validity = parse_kuma_duration(((backend.get("dpCert") or {}).get("rotation") or {}).get("expiration"), DEFAULT_CERT_VALIDITY)
        now = self.clock()
        self.store.activate(mesh.name, authority, now)
        # Decided per certificate window, not per moment: replicas (which all rebuild at window
        # ends) then drop a retired CA from the bundle at the same rebuild, whenever else they build.
        window_start = window_at(now, validity).start
        trusted = [authority.cert_pem] + [
            r.cert_pem
            for r in self.store.retired(mesh.name)
            if r.retired_at + validity > window_start and r.fingerprint != authority.fingerprint
        ]
        mode = str(backend.get("mode") or "STRICT")
        if mode in ("0", "1"):
            mode = ("STRICT", "PERMISSIVE")[int(mode)]
        return MeshTls(mesh.name, mode, authority, b"".join(trusted + extra_trust), validity, identity_cas)

    def for_dataplane(
        self, mesh_tls: MeshTls, dp: ProxySubject, identity: Identity | None = None, trust_domains: tuple[str, ...] = ()
    ) -> ProxyTls | None:
        """The proxy's certificate: from its MeshIdentity if one selects it, else the mesh CA."""
        tag_uris = tuple(sorted({f"kuma://{k}/{v}" for i in dp.inbounds for k, v in i.tags.items() if k != SERVICE_TAG}))
        if identity is not None and identity.resource.name in mesh_tls.identity_cas:
            authority, validity = mesh_tls.identity_cas[identity.resource.name]
            ids: tuple[str, ...] = (identity.spiffe_id,)
        elif mesh_tls.authority is not None:
            authority, validity = mesh_tls.authority, mesh_tls.validity
            services = sorted(
                {i.service for i in dp.inbounds if i.service} | ({(dp.gateway or {}).get("tags", {}).get(SERVICE_TAG)} - {None})
            )
            ids = tuple(spiffe_id(dp.mesh, s) for s in services)
        else:
            return None
        key = (dp.mesh, dp.name, ids, tag_uris, authority.fingerprint, validity)
        now = self.clock()
        with self._lock:
            cert = self._certs.get(key)
            # renew_at is the end of the certificate's window: issuing earlier would give it again.
            if cert is None or now >= cert.renew_at:
                cert = issue_workload(authority, ids, tag_uris, validity, now=now, holder=f"{dp.mesh}/{dp.name}")
                self._certs = {k: v for k, v in self._certs.items() if k[:2] != key[:2]}
                self._certs[key] = cert
        return ProxyTls(
            dp.mesh, mesh_tls.mode, mesh_tls.trust_pem, cert.cert_pem, cert.key_pem, ids, cert.not_after, trust_domains or (dp.mesh,)
        )

    def forget_except(self, nodes: set[tuple[str, str]]) -> None:
        """Drop cached certificates of proxies that are gone."""
        with self._lock:
            self._certs = {k: v for k, v in self._certs.items() if k[:2] in nodes}

    def next_renewal(self) -> float | None:
        with self._lock:
            times = [c.renew_at for c in self._certs.values()]
        return min(times) if times else None
