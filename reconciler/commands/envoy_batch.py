"""Many proxies' static bootstraps as one, so that one `envoy --mode validate` run checks them all.

Starting Envoy costs far more than validating one proxy's resources, so `validate_with_envoy`
(reconciler/commands/envoy_check.py) hands Envoy a batch of proxies in one bootstrap. Each
proxy's resources keep their own namespace there:

- every listener, cluster and secret name of proxy i gets the prefix `p<i>~`, and every string
  inside its resources equal to a name in the batch gets it too (the references: a route's
  cluster, an SDS secret name, ...), so a reference that is dangling in the proxy stays dangling;
- every listener address of proxy i becomes an address of its own (one per distinct original
  address, the port kept), so two listeners of one proxy clash exactly when they clashed before,
  and listeners of different proxies never do (a listener shared as below has an address of its
  own: it clashes with no other listener of its proxies);
- but a cluster, secret or listener that is the same in several proxies, and refers only to
  resources that are the same in them too, appears once, named `s<k>~` after its variant:
  Envoy validates the cluster of a service once, not once per caller. A listener is shared
  only when no other listener of its proxy has its address.

The merge can only make Envoy reject more, never less: a batch that Envoy accepts means every
proxy in it is accepted. A rejected batch is split until the proxies it concerns are validated
alone with their own, unchanged config, and Envoy's message is theirs. A proxy whose config the
rewrite cannot keep equivalent (a listener address that is not an IP, extra addresses, a name
that already looks like a prefix) is never batched.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Batchable", "batchable", "merged", "shell_key"]

JSON = dict[str, Any]

_PREFIXED = re.compile(r"^[ps]\d+~")
_FRESH = ipaddress.ip_network("127.128.0.0/9")
"""Where listeners move: addresses no generated listener has."""
_OTHER_ADDRESSES = frozenset({"additionalAddresses", "internalListener", "apiListener"})
"""Listener fields with addresses of their own that the rewrite does not move: validated alone."""


@dataclass(frozen=True, slots=True)
class Batchable:
    """One proxy's static resources, ready to be merged with others'."""

    static: Mapping[str, Any]
    names: frozenset[str]
    addresses: tuple[str, ...]
    """Its listeners' distinct addresses, in order of first use."""
    shareable: Mapping[str, tuple[str, frozenset[str]]]
    """Its clusters, secrets and listeners that could be shared, by name: their JSON text and the
    strings in them. A listener can be when no other listener of the proxy has its address."""
    sockets: Mapping[str, tuple[Any, ...]]
    """The address of each shareable listener."""

    def signature(self) -> str:
        """Orders proxies so that those that call the same services land in the same batch."""
        return "\n".join(sorted(c["name"] for c in self.static.get("clusters", ())))


def shell_key(config: Mapping[str, Any]) -> str:
    """What proxies must share to be merged: the bootstrap without its resources, node and admin port."""
    admin = config.get("admin", {})
    address = admin.get("address", {}).get("socketAddress", {})
    shell = {k: v for k, v in config.items() if k not in ("node", "staticResources", "admin")}
    rest = {k: v for k, v in admin.items() if k != "address"}
    return json.dumps([shell, rest, {k: v for k, v in address.items() if k != "portValue"}], sort_keys=True)


def batchable(config: Mapping[str, Any], strings: dict[str, frozenset[str]] | None = None) -> Batchable | None:
    """The proxy's resources, or None when it must be validated alone; `strings` caches the
    strings of resources by their text (many proxies share resources)."""
    strings = {} if strings is None else strings
    port = config.get("admin", {}).get("address", {}).get("socketAddress", {}).get("portValue")
    static = config.get("staticResources")
    if (
        not isinstance(port, int)
        or not 0 < port < 65536
        or not isinstance(static, dict)
        or set(static) - {"listeners", "clusters", "secrets"}
    ):
        return None
    names: set[str] = set()
    for kind in ("listeners", "clusters", "secrets"):
        for item in static.get(kind, ()):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or not name or _PREFIXED.match(name) or name in names:
                return None
            names.add(name)
    addresses: list[str] = []
    for listener in static.get("listeners", ()):
        address = _listener_address(listener)
        if address is None:
            return None
        if address not in addresses:
            addresses.append(address)
    sockets = {item["name"]: _socket(item) for item in static.get("listeners", ())}
    uses = Counter(sockets.values())
    alone = {name for name, socket in sockets.items() if uses[socket] == 1}
    shareable = {}
    for kind in ("clusters", "secrets", "listeners"):
        for item in static.get(kind, ()):
            if kind == "listeners" and item["name"] not in alone:
                continue
            text = json.dumps(item, sort_keys=True)
            found = strings.get(text)
            if found is None:
                found = strings[text] = frozenset(_strings(item))
            shareable[item["name"]] = (text, found)
    return Batchable(static, frozenset(names), tuple(addresses), shareable, {n: sockets[n] for n in alone})


def _socket(listener: Mapping[str, Any]) -> tuple[Any, ...]:
    socket = listener["address"]["socketAddress"]
    return socket["address"], socket.get("portValue")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _listener_address(listener: Mapping[str, Any]) -> str | None:
    if _OTHER_ADDRESSES & set(listener):
        return None
    socket = listener.get("address", {}).get("socketAddress")
    if not isinstance(socket, dict) or set(socket) - {"address", "portValue", "protocol"}:
        return None
    address = socket.get("address")
    if not isinstance(address, str) or "%" in address:
        return None
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return None
    return address


def merged(shell: Mapping[str, Any], proxies: Sequence[Batchable]) -> JSON:
    """One bootstrap with the resources of all `proxies`, each in its own namespace but for the
    resources they share (`_variants`), which appear once; node and admin from `shell` (one of
    the proxies' configs)."""
    everything = frozenset().union(*(p.names for p in proxies))
    keys = [_variants(p, everything) for p in proxies]
    numbers: dict[tuple[str, str], int] = {}
    for variants in keys:
        for name_key in variants.items():
            numbers.setdefault(name_key, len(numbers))
    out: dict[str, list[Any]] = {"listeners": [], "clusters": [], "secrets": []}
    emitted: set[int] = set()
    fresh = _fresh_addresses()
    shared_address: dict[int, str] = {}
    for i, (proxy, variants) in enumerate(zip(proxies, keys, strict=True)):
        # Names of the batch this proxy does not have, or has but does not share, get its own
        # prefix: a reference dangling in the proxy stays dangling in the batch.
        rename = {name: f"p{i}~{name}" for name in everything}
        rename.update({name: f"s{numbers[name, key]}~{name}" for name, key in variants.items()})
        moved = {address: next(fresh) for address in proxy.addresses}
        for kind, items in out.items():
            for item in proxy.static.get(kind, ()):
                key = variants.get(item["name"])
                if key is not None:
                    if numbers[item["name"], key] in emitted:
                        continue
                    emitted.add(numbers[item["name"], key])
                copy = _renamed(item, rename)
                if kind == "listeners":
                    socket = copy["address"]["socketAddress"]
                    if key is None:
                        socket["address"] = moved[socket["address"]]
                    else:
                        socket["address"] = shared_address.setdefault(numbers[item["name"], key], next(fresh))
                items.append(copy)
    resources: JSON = {"listeners": out["listeners"], "clusters": out["clusters"]}
    if out["secrets"]:
        resources["secrets"] = out["secrets"]
    return {"node": shell["node"], "admin": shell["admin"], "staticResources": resources}


def _variants(proxy: Batchable, everything: frozenset[str]) -> dict[str, str]:
    """The resources of `proxy` that can be shared with the proxies that have the same variant:
    name → a key of its text and of the variants of everything it refers to (which the proxy
    must have, and share). Listeners are shared only if nothing refers to them."""
    listeners = set(proxy.sockets)
    keys: dict[str, str | None] = {}

    def key(name: str, seen: frozenset[str]) -> str | None:
        if name in keys:
            return keys[name]
        if name not in proxy.shareable or name in seen:
            return None
        text, strings = proxy.shareable[name]
        parts = [text]
        for ref in sorted((strings & everything) - {name}):
            ref_key = None if ref in listeners else key(ref, seen | {name})
            if ref_key is None:
                keys[name] = None
                return None
            parts.append(f"{ref}={ref_key}")
        keys[name] = hashlib.sha256("\n".join(parts).encode()).hexdigest()
        return keys[name]

    return {name: k for name in proxy.shareable if (k := key(name, frozenset())) is not None}


def _renamed(value: Any, rename: Mapping[str, str]) -> Any:
    """A copy of `value` with every string that is a key of `rename` replaced."""
    if isinstance(value, str):
        return rename.get(value, value)
    if isinstance(value, dict):
        return {k: _renamed(v, rename) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, rename) for v in value]
    return value


def _fresh_addresses() -> Iterator[str]:
    """Addresses in _FRESH, one after the other."""
    n = int(_FRESH.network_address)
    while True:
        yield str(ipaddress.IPv4Address(n))
        n += 1
