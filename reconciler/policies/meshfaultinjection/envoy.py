"""MeshFaultInjection's effect on Envoy: HTTP faults on a sidecar's inbound listeners.

Follows Kuma v2.14 (`pkg/plugins/policies/meshfaultinjection/plugin/xds/configurer.go` and
`legacy_configurer.go`). Every entry of `default.http` becomes one `envoy.filters.http.fault`
HTTP filter before the router, in list order: `abort` → `abort.http_status` and
`abort.percentage`, `delay` → `delay.fixed_delay` and `delay.percentage`, `responseBandwidth` →
`response_rate_limit.fixed_limit.limit_kbps` and its `percentage`. Percentages are integers or
decimal strings, written as Kuma's ConvertPercentage does: whole numbers over HUNDRED, two
decimals over TEN_THOUSAND, anything finer over MILLION (rounded).

Which faults a listener gets comes in one of two shapes:

- `{"http": [...]}`: the merged `default` of the policies' `from` entries targeting the whole
  mesh (Kuma's legacy rules for a client subset of "everyone"): plain fault filters.
- `{"rules": [{"filter", "match", "http"}, ...]}`, made by `inbound_conf` when any policy has
  `rules` for the listener: as Kuma, every rule keeps its own faults (rules are not merged), in
  rule order, each fault wrapped in an `ExtensionWithMatcher` named after the policy (KRI) that
  skips the fault unless the client matches (SPIFFE ID from its certificate, or SNI).

On a builtin gateway the conf is the listener's `{"http": [...]}` (views/gateway_policies.py:
the merged `to` entries of kind Mesh of the policies reaching that listener); the HCM hook runs
on the gateway listener's HTTP connection managers with an inbound context, as Kuma's
`applyToGateways` (HTTP and HTTPS listeners only).

Client-specific `from` entries (MeshService, MeshSubset, MeshServiceSubset) are not applied:
Kuma matches them on the `x-kuma-tags` request header, which the sidecars of this mesh do not
send; with Kuma's header matchers and no header nothing would match, so such a policy would
silently change nothing for anyone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from envoy.config.core.v3 import extension_pb2 as envoy_extension_pb2
from envoy.extensions.common.matching.v3 import extension_matcher_pb2
from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault_pb2
from envoy.extensions.filters.common.matcher.action.v3 import skip_action_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.matching.common_inputs.network.v3 import network_inputs_pb2
from envoy.extensions.matching.common_inputs.ssl.v3 import ssl_inputs_pb2
from envoy.type.v3 import percent_pb2
from xds.core.v3 import extension_pb2 as xds_extension_pb2
from xds.type.matcher.v3 import matcher_pb2, regex_pb2, string_pb2

from reconciler.durations import parse_duration
from reconciler.envoy_builders import duration, pack
from reconciler.frozen import freeze
from reconciler.mesh.model import Dataplane, Inbound
from reconciler.model import Resource
from reconciler.policies.core.match import PolicyIndex, matched_policies
from reconciler.policies.core.match import inbound_conf as merged_inbound_conf
from reconciler.policies.core.plugin import HookContext, Plugin

__all__ = [
    "PLUGIN",
    "FAULT_FILTER",
    "fractional_percent",
    "bandwidth_kbps",
    "http_fault",
    "kri",
    "inbound_conf",
    "configure_http_connection_manager",
]

KIND = "MeshFaultInjection"
FAULT_FILTER = "envoy.filters.http.fault"
ROUTER = "envoy.filters.http.router"
_BANDWIDTH = re.compile(r"^([0-9]*)[\t\n\f\r ]?([GMk]+bps)$")
_KBPS_PER_UNIT = {"kbps": 1, "Mbps": 1000, "Gbps": 1_000_000}
_FP = percent_pb2.FractionalPercent
Predicate = matcher_pb2.Matcher.MatcherList.Predicate


# -- one fault ------------------------------------------------------------------------------
def fractional_percent(value: Any) -> percent_pb2.FractionalPercent:
    """Kuma's ConvertPercentage of an int-or-decimal-string percentage (unset reads as 0)."""
    number = float(value) if value is not None and not isinstance(value, bool) else 0.0
    if math.floor(number) == number:
        return _FP(numerator=int(number), denominator=_FP.HUNDRED)
    hundredths = 100 * number
    if math.floor(hundredths) == hundredths:
        return _FP(numerator=int(hundredths), denominator=_FP.TEN_THOUSAND)
    # Go's math.Round: halves away from zero (the value is never negative here).
    return _FP(numerator=int(math.floor(10_000 * number + 0.5)), denominator=_FP.MILLION)


def bandwidth_kbps(limit: Any) -> int | None:
    """`500kbps`, `10Mbps`, `1Gbps` in kbps; None when Kuma could not convert it either."""
    match = _BANDWIDTH.match(limit) if isinstance(limit, str) else None
    if match is None or not match.group(1) or match.group(2) not in _KBPS_PER_UNIT:
        return None
    return int(match.group(1)) * _KBPS_PER_UNIT[match.group(2)]


def http_fault(conf: Mapping[str, Any]) -> fault_pb2.HTTPFault:
    """One `default.http[]` entry as Envoy's HTTPFault."""
    fault = fault_pb2.HTTPFault()
    delay = conf.get("delay")
    if isinstance(delay, Mapping):
        fault.delay.CopyFrom(
            common_fault_pb2.FaultDelay(
                fixed_delay=duration(parse_duration(delay.get("value")) or 0.0),
                percentage=fractional_percent(delay.get("percentage")),
            )
        )
    abort = conf.get("abort")
    if isinstance(abort, Mapping):
        fault.abort.CopyFrom(
            fault_pb2.FaultAbort(http_status=int(abort.get("httpStatus") or 0), percentage=fractional_percent(abort.get("percentage")))
        )
    bandwidth = conf.get("responseBandwidth")
    if isinstance(bandwidth, Mapping):
        kbps = bandwidth_kbps(bandwidth.get("limit"))
        if kbps is not None:
            fault.response_rate_limit.CopyFrom(
                common_fault_pb2.FaultRateLimit(
                    fixed_limit=common_fault_pb2.FaultRateLimit.FixedLimit(limit_kbps=kbps),
                    percentage=fractional_percent(bandwidth.get("percentage")),
                )
            )
    return fault


# -- which faults a listener gets -----------------------------------------------------------
def kri(policy: Resource) -> str:
    """Kuma's resource identifier of a MeshFaultInjection, the name of the filters it adds."""
    labels = policy.labels
    name = labels.get("kuma.io/display-name") or policy.name
    return f"kri_mfi_{policy.mesh}_{labels.get('kuma.io/zone', '')}_{labels.get('k8s.kuma.io/namespace', '')}_{name}_"


def _match_order(rule: Mapping[str, Any]) -> tuple[int, int, int]:
    """Kuma's SortRules: a SPIFFE ID match first (Exact before Prefix), then SNI, then none."""
    match = rule.get("match") or {}
    spiffe, sni = match.get("spiffeID"), match.get("sni")
    score = {"Exact": 2, "Prefix": 1}.get((spiffe or {}).get("type", ""), 0)
    return (spiffe is None, -score, sni is None)


def inbound_conf(dp: Dataplane, inbound: Inbound, index: PolicyIndex, mtls: bool = False) -> Mapping[str, Any] | None:
    """The faults of one inbound: the policies' `rules` one by one when any policy has rules for
    it (Kuma then ignores `from`), else the merged `from` entries targeting the whole mesh.

    Without mTLS no client has an identity, so rules matching clients are left out. Kuma keeps
    them, and Envoy, unable to read a certificate that is not there, cannot decide the match
    and runs the fault for every client: the opposite of what the rule says."""
    key = (inbound.address, inbound.port)
    has_rules = False
    rules: list[dict[str, Any]] = []
    for matched in matched_policies(KIND, dp, index):
        if key not in matched.selection.inbounds:
            continue
        for rule in matched.resource.spec.get("rules") or ():
            has_rules = True
            http = (rule.get("default") or {}).get("http") or ()
            for match in rule.get("matches") or (None,):  # one rule per match, as Kuma expands them
                if match is None or mtls:
                    rules.append({"filter": kri(matched.resource), "match": match, "http": http})
    if has_rules:
        rules.sort(key=_match_order)  # stable: policy order within the same match kind
        return freeze({"rules": rules}) if rules else None
    merged = merged_inbound_conf(KIND, dp, inbound, index)
    return merged.value if merged is not None else None


# -- HTTP filters ---------------------------------------------------------------------------
def _single(input_name: str, input_config: Any, value: string_pb2.StringMatcher) -> Any:
    return Predicate(
        single_predicate=Predicate.SinglePredicate(
            input=xds_extension_pb2.TypedExtensionConfig(name=input_name, typed_config=pack(input_config)),
            value_match=value,
        )
    )


def _one_uri_san(spiffe: Mapping[str, Any]) -> string_pb2.StringMatcher:
    """Matches when one of the certificate's URI SANs is (Exact) or starts with (Prefix) the value.

    Envoy's input is every URI SAN joined with commas, and the mesh's certificates carry Kuma's
    `kuma://` tag URIs after the SPIFFE ID. Kuma matches the joined string as a whole, so its
    Exact match never matches such a certificate; a regex over one element of the list does.
    """
    value = re.escape(str(spiffe.get("value", "")))
    rest = ".*" if spiffe.get("type") == "Prefix" else "(?:,.*)?"
    return string_pb2.StringMatcher(
        safe_regex=regex_pb2.RegexMatcher(google_re2=regex_pb2.RegexMatcher.GoogleRE2(), regex=f"^(?:.*,)?{value}{rest}$")
    )


def _predicate(match: Mapping[str, Any]) -> Any:
    """The client matches: its certificate's URI SAN is the SPIFFE ID, and/or the SNI it asked for."""
    parts = []
    spiffe = match.get("spiffeID")
    if isinstance(spiffe, Mapping):
        parts.append(_single("envoy.matching.inputs.uri_san", ssl_inputs_pb2.UriSanInput(), _one_uri_san(spiffe)))
    sni = match.get("sni")
    if isinstance(sni, Mapping):
        parts.append(
            _single(
                "envoy.matching.inputs.server_name",
                network_inputs_pb2.ServerNameInput(),
                string_pb2.StringMatcher(exact=str(sni.get("value", ""))),
            )
        )
    if len(parts) == 1:
        return parts[0]
    return Predicate(and_matcher=Predicate.PredicateList(predicate=parts))


def _skip_unless(match: Mapping[str, Any] | None) -> matcher_pb2.Matcher:
    """A matcher whose action skips the wrapped filter for clients that do not match; with no
    match it is empty and the filter always runs (Kuma's catch-all rule)."""
    if not match or (match.get("spiffeID") is None and match.get("sni") is None):
        return matcher_pb2.Matcher()
    skip = xds_extension_pb2.TypedExtensionConfig(name="skip", typed_config=pack(skip_action_pb2.SkipFilter()))
    field_matcher = matcher_pb2.Matcher.MatcherList.FieldMatcher(
        predicate=Predicate(not_matcher=_predicate(match)),
        on_match=matcher_pb2.Matcher.OnMatch(action=skip),
    )
    return matcher_pb2.Matcher(matcher_list=matcher_pb2.Matcher.MatcherList(matchers=[field_matcher]))


def _filters(conf: Mapping[str, Any]) -> list[hcm_pb2.HttpFilter]:
    rules = conf.get("rules")
    if rules is None:
        return [hcm_pb2.HttpFilter(name=FAULT_FILTER, typed_config=pack(http_fault(f))) for f in conf.get("http") or ()]
    out = []
    for rule in rules:
        matcher = _skip_unless(rule.get("match"))
        for f in rule.get("http") or ():
            wrapped = extension_matcher_pb2.ExtensionWithMatcher(
                xds_matcher=matcher,
                extension_config=envoy_extension_pb2.TypedExtensionConfig(name=FAULT_FILTER, typed_config=pack(http_fault(f))),
            )
            out.append(hcm_pb2.HttpFilter(name=str(rule["filter"]), typed_config=pack(wrapped)))
    return out


def _insert_before_router(hcm: hcm_pb2.HttpConnectionManager, new: Sequence[hcm_pb2.HttpFilter]) -> None:
    filters = list(hcm.http_filters)
    at = next((i for i, f in enumerate(filters) if f.name == ROUTER), len(filters))
    filters[at:at] = new
    del hcm.http_filters[:]
    hcm.http_filters.extend(filters)


def configure_http_connection_manager(hcm: hcm_pb2.HttpConnectionManager, conf: Mapping[str, Any], ctx: HookContext) -> None:
    """Fault filters right before the router; MeshRateLimit, applied after this kind, puts its
    filter between them and the router, so a fault is injected before a request is counted."""
    if ctx.direction != "inbound":
        return
    filters = _filters(conf)
    if filters:
        _insert_before_router(hcm, filters)


PLUGIN = Plugin(
    kind="MeshFaultInjection",
    http_connection_manager=configure_http_connection_manager,
    # Sidecars get faults on their inbounds (`rules`/`from`); `to` only configures builtin
    # gateways, as a listener conf (views/gateway_policies.py). Kuma has no default policy.
    inbound=True,
    outbound=False,
    # Kuma keeps each rule's faults apart (rules are not merged) and ignores `from` on a
    # listener that has rules; the generic merge cannot say that.
    inbound_conf=inbound_conf,
)
"""HTTP fault filters on inbound and builtin gateway listeners."""
