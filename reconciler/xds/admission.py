"""Which proxy may hold an xDS stream, decided from its dataplane token and the served snapshot.

- `DataplaneAuthenticator` decides admission from a token and the served snapshot; it raises
  `XdsRejected` with UNAUTHENTICATED (no token, or one that does not verify, has expired or
  is revoked) or PERMISSION_DENIED (a valid token for another dataplane). A token is checked
  against the Dataplane that is served to the node: the one declared in git when there is
  one (git wins, so node metadata cannot lend it other tags), else the one the proxy
  registered in its node metadata. When a MeshIdentity makes a registered Dataplane's
  `kuma.io/workload` label its SPIFFE id, the token must be bound to that workload (Kuma's
  rule), or the proxy would choose its own identity.
- `AuthorizedWatcher` is the cache as admitted streams see it: each new config of a node is
  handed to a stream only after its token is checked again against the Dataplane served now.
  A commit, or another stream registering the same node, can change that Dataplane; the
  stream is closed before it receives an identity its token does not admit.

The transport side (TLS, the interceptor that gives each stream its `XdsCall`) is
reconciler.xds.security.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import grpc
from envoy.config.core.v3 import base_pb2

from reconciler.ca.authority import CaError
from reconciler.ca.identity import DEFAULT_PATH, identity_for
from reconciler.ca.signing_keys import SigningKeys
from reconciler.ca.tokens import (
    REVOCATIONS_PREFIX,
    DataplaneClaims,
    IdentityMismatch,
    TokenError,
    check_identity,
    check_workload,
    dataplane_tags,
    parse_revocations,
    verify_token,
)
from reconciler.errors import escape_control
from reconciler.gocompat.encoding import decode_base64
from reconciler.mesh.model import dataplane_from_resource
from reconciler.xds.cache import ConfigWatcher, NodeConfig
from reconciler.xds.security import AUTHORIZATION_HEADER, TOKEN_METADATA_KEY, XdsCall, current_call
from reconciler.xds.server import XdsRejected

if TYPE_CHECKING:
    from reconciler.model import Resource, Snapshot

__all__ = [
    "DataplaneAuthenticator",
    "AuthorizedWatcher",
    "presented_token",
    "split_node_id",
    "MAX_NODE_ID",
    "revocations_of",
]

log = logging.getLogger("reconciler.xds.security")

_WORKLOAD_IN_TEMPLATE = re.compile(r'\{\{-?\s*(?:\.Workload|label\s+"kuma\.io/workload")\s*-?\}\}')
"""A SPIFFE id template that renders the `kuma.io/workload` label (as Kuma's UsesWorkloadLabel)."""


def revocations_of(secrets: Iterable[Resource]) -> dict[str, frozenset[str]]:
    """Revoked token IDs per mesh, from the `dataplane-token-revocations-<mesh>` Secrets."""
    out: dict[str, frozenset[str]] = {}
    for r in secrets:
        if r.name != REVOCATIONS_PREFIX + r.mesh:
            continue
        data = r.spec.get("data")
        decoded = decode_base64(data) if isinstance(data, str) else None
        if decoded is not None:
            out[r.mesh] = parse_revocations(decoded)
    return out


MAX_NODE_ID = 64 + 1 + 253
"""A node id is `<mesh>.<name>`: a mesh name of at most 63 characters (Kuma's), a dot, a
Dataplane name of at most 253 (an RFC 1123 subdomain); one longer is not a mesh proxy's."""


def split_node_id(node_id: str) -> tuple[str, str]:
    """(mesh, name) of a node id; INVALID_ARGUMENT when it cannot name a dataplane. Checked
    before anything else reads it: the id goes into logs and into the refusal sent back, so
    a huge one or one with control characters is refused without being echoed."""
    if len(node_id) > MAX_NODE_ID:
        raise XdsRejected(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"node id is {len(node_id):,} characters long; at most {MAX_NODE_ID} (<mesh>.<dataplane name>)",
        )
    if escape_control(node_id) != node_id:
        raise XdsRejected(grpc.StatusCode.INVALID_ARGUMENT, f'node id "{escape_control(node_id)}" holds control characters')
    mesh, _, name = node_id.partition(".")
    if not mesh or not name:
        raise XdsRejected(grpc.StatusCode.INVALID_ARGUMENT, f'node id "{node_id}" must be <mesh>.<dataplane name>')
    return mesh, name


def presented_token(node: base_pb2.Node, call: XdsCall | None) -> str | None:
    """The token a proxy presents: the `authorization` header or node metadata `dataplane.token`."""
    header = (call.metadata.get(AUTHORIZATION_HEADER) if call else None) or ""
    header = header.removeprefix("Bearer ").strip()
    field_value = node.metadata.fields.get(TOKEN_METADATA_KEY) if node.HasField("metadata") else None
    in_node = field_value.string_value.strip() if field_value is not None and field_value.HasField("string_value") else ""
    if header and in_node and header != in_node:
        raise XdsRejected(
            grpc.StatusCode.UNAUTHENTICATED,
            f"two different dataplane tokens: one in the {AUTHORIZATION_HEADER} header, one in node metadata {TOKEN_METADATA_KEY}",
        )
    return header or in_node or None


class DataplaneAuthenticator:
    """Admission by dataplane token against the served snapshot (revocations, Dataplane tags)."""

    def __init__(self, keys: SigningKeys) -> None:
        self.keys = keys
        self._snapshot: Snapshot | None = None
        self._revoked: dict[str, frozenset[str]] = {}
        self._declared: dict[tuple[str, str], Resource] | None = None
        self._tags: dict[tuple[str, str], dict[str, set[str]]] = {}
        self._workload_identity: dict[tuple[str, str], tuple[Resource, str | None]] = {}
        """Per registered Dataplane (the resource it was computed for): `identity_from_label`."""

    def use(self, snapshot: Snapshot | None) -> None:
        """Follow the applied snapshot: its revocation Secrets, Dataplanes and MeshIdentities."""
        if snapshot is self._snapshot:
            return
        self._snapshot = snapshot
        self._revoked = revocations_of(snapshot.of_type("Secret")) if snapshot is not None else {}
        self._declared = None
        self._tags = {}
        self._workload_identity = {}

    def revoked(self, mesh: str) -> frozenset[str]:
        return self._revoked.get(mesh, frozenset())

    def declared(self, mesh: str, name: str) -> Resource | None:
        """The Dataplane `mesh`.`name` declared in git, if any."""
        if self._snapshot is None:
            return None
        if self._declared is None:
            self._declared = {(r.mesh, r.name): r for r in self._snapshot.of_type("Dataplane")}
        return self._declared.get((mesh, name))

    def declared_tags(self, mesh: str, name: str) -> dict[str, set[str]] | None:
        resource = self.declared(mesh, name)
        if resource is None:
            return None
        tags = self._tags.get((mesh, name))
        if tags is None:
            tags = self._tags[(mesh, name)] = dataplane_tags(resource.spec)
        return tags

    def identity_from_label(self, registered: Resource) -> str | None:
        """The MeshIdentity whose SPIFFE id for this registered Dataplane renders its
        `kuma.io/workload` label, or None. INVALID_ARGUMENT when its MeshIdentity cannot
        render an id for it (a missing label): such a Dataplane would break every build."""
        key = (registered.mesh, registered.name)
        known = self._workload_identity.get(key)
        if known is not None and known[0] is registered:
            return known[1]
        identities = self._snapshot.of_type("MeshIdentity") if self._snapshot is not None else ()
        try:
            identity = identity_for(dataplane_from_resource(registered, registered=True), identities)
        except CaError as e:
            raise XdsRejected(grpc.StatusCode.INVALID_ARGUMENT, f"invalid Dataplane in node metadata: {e}") from None
        source = None
        if identity is not None:
            spiffe = identity.resource.spec.get("spiffeID") or {}
            templates = (str(spiffe.get("path") or DEFAULT_PATH), str(spiffe.get("trustDomain") or ""))
            if any(_WORKLOAD_IN_TEMPLATE.search(t) for t in templates):
                source = identity.resource.name
        self._workload_identity[key] = (registered, source)
        return source

    def authenticate(self, node: base_pb2.Node, call: XdsCall | None, mesh: str, name: str) -> DataplaneClaims:
        """The verified token of the stream; UNAUTHENTICATED when there is none or it fails."""
        token = presented_token(node, call)
        if token is None:
            raise XdsRejected(
                grpc.StatusCode.UNAUTHENTICATED,
                f"dataplane token required for {mesh}.{name}: issue one with `reconciler token issue --mesh {mesh} --name {name}` "
                "and pass it with `run-dataplane --dataplane-token-file`",
            )
        try:
            # A token is checked against its own mesh's revocations and those of the mesh it is used in.
            return verify_token(token, self.keys, revoked=lambda m: self.revoked(m) | self.revoked(mesh))
        except TokenError as e:
            raise XdsRejected(grpc.StatusCode.UNAUTHENTICATED, f"invalid dataplane token: {e}") from None

    def served_tags(self, mesh: str, name: str, registered: Resource | None) -> dict[str, set[str]] | None:
        """The tags of the Dataplane served to `mesh`.`name`: the one declared in git when there
        is one (the mesh model ignores a registered Dataplane with the same identity), else
        `registered` (from node metadata); None when neither exists."""
        declared = self.declared_tags(mesh, name)
        if declared is not None:
            return declared
        return dataplane_tags(registered.spec) if registered is not None else None

    def authorize(
        self, claims: DataplaneClaims, mesh: str, name: str, registered: Resource | None = None, *, check_tags: bool = True
    ) -> None:
        """PERMISSION_DENIED unless the token names this dataplane (or allows its tags).

        The tags are those of the Dataplane served (`served_tags`: git's, else `registered`);
        `check_tags=False` checks mesh and name only.
        """
        denied = f"dataplane token does not admit {mesh}.{name}"
        try:
            check_identity(claims, mesh, name, None, check_tags=False)
        except IdentityMismatch as e:
            raise XdsRejected(grpc.StatusCode.PERMISSION_DENIED, f"{denied}: {e}") from None
        if not check_tags:
            return
        if claims.tags:
            try:
                check_identity(claims, mesh, name, self.served_tags(mesh, name, registered))
            except IdentityMismatch as e:
                declared = self.declared_tags(mesh, name)
                # Say why the tags in the proxy's own metadata did not count.
                overridden = registered is not None and declared is not None and dataplane_tags(registered.spec) != declared
                hint = "; the Dataplane declared in git is served, not the one in node metadata" if overridden else ""
                raise XdsRejected(grpc.StatusCode.PERMISSION_DENIED, f"{denied}: {e}{hint}") from None
        # Labels, like tags, count from the Dataplane served; only a registered one's were chosen by the proxy.
        served = self.declared(mesh, name)
        from_label = None
        if served is None and registered is not None:
            served, from_label = registered, self.identity_from_label(registered)
        try:
            check_workload(claims, mesh, name, served.labels if served is not None else {}, from_label)
        except IdentityMismatch as e:
            raise XdsRejected(grpc.StatusCode.PERMISSION_DENIED, f"{denied}: {e}") from None

    def recheck(self, call: XdsCall, registered: Resource | None) -> tuple[grpc.StatusCode, str] | None:
        """Why an admitted stream must now be closed (its token was revoked, or the Dataplane
        served to its node is one a tag-bound token does not admit), or None."""
        claims = call.claims
        if claims is None:
            return None
        mesh, _, name = call.node_id.partition(".")
        if claims.token_id in self.revoked(claims.mesh) or claims.token_id in self.revoked(mesh):
            return grpc.StatusCode.UNAUTHENTICATED, f"dataplane token {claims.token_id} was revoked (Secret {REVOCATIONS_PREFIX}{mesh})"
        try:
            self.authorize(claims, mesh, name, registered)
        except XdsRejected as e:
            return e.code, e.message
        return None


class AuthorizedWatcher:
    """A `ConfigWatcher` that checks, before a stream gets a node's config, that the stream's
    token still admits what is served to the node.

    `refusal(call)` says why `call` may no longer be served (None: it may); it must read the
    same state the config was built from, which holds because the control plane publishes a
    build and records its snapshot without awaiting in between. A refused stream gets
    `XdsRejected` from `fetch`, which the ADS server turns into the stream's status.
    Streams outside a `StreamGuard` (no current call) are not checked.
    """

    def __init__(self, watcher: ConfigWatcher, refusal: Callable[[XdsCall], tuple[grpc.StatusCode, str] | None]) -> None:
        self.watcher = watcher
        self.refusal = refusal

    def fetch(self, node_id: str) -> NodeConfig | None:
        self._check(node_id)
        return self.watcher.fetch(node_id)

    def changed(self, node_id: str, after_generation: int) -> asyncio.Future[None]:
        return self.watcher.changed(node_id, after_generation)  # the stream `fetch`es (checked) what changed

    def _check(self, node_id: str) -> None:
        call = current_call()
        if call is None or call.node_id != node_id:
            return
        refused = self.refusal(call)
        if refused is not None:
            raise XdsRejected(*refused)
