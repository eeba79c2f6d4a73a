"""Ask the real Envoy whether it accepts a config: `envoy --mode validate` on static bootstraps.

Envoy checks far more than our validator can (every proto constraint, duplicate listener
addresses, routes to unknown clusters, filter configs), so `plan` and `reconcile --out --check`
hand each proxy's static config to it. `validate_with_envoy` dedupes identical configs, merges
many proxies into one Envoy run and runs several in parallel (reconciler/commands/envoy_runs.py);
a rejected proxy's message comes from a run of its own, unchanged config
(reconciler/commands/envoy_validate.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.commands.envoy_runs import check_with_envoy
from reconciler.commands.envoy_validate import TIMEOUT, EnvoyVerdict, default_jobs, validate_file

__all__ = ["EnvoyVerdict", "validate_with_envoy", "validate_file", "default_jobs"]


def validate_with_envoy(
    configs: Mapping[str, Mapping[str, Any]], *, envoy: str | None = None, jobs: int | None = None, timeout: float = TIMEOUT
) -> dict[str, EnvoyVerdict]:
    """Validate each node's bootstrap with Envoy; verdicts by node id, in input order.

    Raises EnvoyNotFound when no Envoy binary can be found.
    """
    return check_with_envoy(configs, envoy=envoy, jobs=jobs, timeout=timeout).verdicts
