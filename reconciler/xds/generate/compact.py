"""The compact outbound shape: one listener holding every outbound address.

Kuma gives each outbound its own listener. Envoy spends most of its start-up time applying
listeners one by one, so a proxy reaching thousands of services is slow to become ready.
Here the per-outbound listeners are generated exactly as in Kuma's shape and then folded:
each one's filter chain becomes a chain of the listener `outbounds`, matched by the
destination address and port the application connected to, and named after the listener it
replaces (`outbound:<address>:<port>`). Stat prefixes stay those of Kuma's shape.

A per-outbound listener that carries anything besides its address and filter chains (a
listener filter, socket options a policy added) cannot be folded without changing what it
does; it stays a listener of its own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_pb2

from reconciler.xds.resources import LISTENER, XdsResource, resource_from_payload

__all__ = ["COMPACT_LISTENER", "compact_outbound_listeners"]

COMPACT_LISTENER = "outbounds"
"""The name of the one outbound listener of a compact proxy."""

_FOLDABLE = frozenset({"name", "address", "filter_chains", "traffic_direction"})
_FILTER_CHAINS = listener_pb2.Listener.DESCRIPTOR.fields_by_name["filter_chains"].number
_CHAIN_TAG = bytes([_FILTER_CHAINS << 3 | 2])  # wire type 2: length-delimited (field number < 16)


def compact_outbound_listeners(listeners: Iterable[XdsResource]) -> list[XdsResource]:
    """The listener `outbounds` with a chain per foldable listener, then those not foldable."""
    folded: list[tuple[address_pb2.Address, bytes]] = []
    kept: list[XdsResource] = []
    for listener in listeners:
        chains = _folded_chains(listener)
        if chains is None:
            kept.append(listener)
        else:
            folded.append(chains)
    if not folded:
        return kept
    head = listener_pb2.Listener(
        name=COMPACT_LISTENER,
        address=folded[0][0],
        additional_addresses=[listener_pb2.AdditionalAddress(address=a) for a, _ in folded[1:]],
        traffic_direction=base_pb2.OUTBOUND,
    )
    # Concatenating serialized repeated fields is a valid encoding of the whole message, and
    # saves re-parsing thousands of chains each time one outbound changes.
    payload = head.SerializeToString(deterministic=True) + b"".join(chains for _, chains in folded)
    return [resource_from_payload(LISTENER, COMPACT_LISTENER, payload), *kept]


@lru_cache(maxsize=65536)
def _folded_chains(listener: XdsResource) -> tuple[address_pb2.Address, bytes] | None:
    """(the listener's address, its chains as `filter_chains` fields), or None if not foldable."""
    message = listener.message()
    assert isinstance(message, listener_pb2.Listener)
    if {f.name for f, _ in message.ListFields()} - _FOLDABLE or not message.address.HasField("socket_address"):
        return None
    socket = message.address.socket_address
    out = []
    for i, chain in enumerate(message.filter_chains):
        chain.name = listener.name if i == 0 else f"{listener.name}#{i}"
        match = chain.filter_chain_match
        match.destination_port.value = socket.port_value
        ip = ipaddress.ip_address(socket.address)
        if not ip.is_unspecified:
            # A wildcard outbound takes connections to any local address: match the port only.
            cidr = match.prefix_ranges.add(address_prefix=socket.address)
            cidr.prefix_len.value = ip.max_prefixlen
        body = chain.SerializeToString(deterministic=True)
        out.append(_CHAIN_TAG + _varint(len(body)) + body)
    return message.address, b"".join(out)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
