"""Hypothesis profiles for the fuzz tests, chosen with RECONCILER_FUZZ_PROFILE.

- `ci` (default, what `make test` runs): a fixed number of derandomized cases, the same on
  every run, so a red CI is reproducible; about 30 s for the module on 2 cores.
- `fuzz` (`make fuzz`): 10,000 fresh random cases per test; a failure prints the seed
  (`--hypothesis-seed=N` replays it) and hypothesis' minimal example.
- `quick`: a handful, for editing the tests themselves.

The example database is off: a rerun depends on the seed, not on files left by older runs.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,  # the first case pays for the mesh CA; wall time is no property here
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    "print_blob": True,
}

settings.register_profile("ci", max_examples=int(os.environ.get("RECONCILER_FUZZ_EXAMPLES", "400")), derandomize=True, **_COMMON)
settings.register_profile("fuzz", max_examples=int(os.environ.get("RECONCILER_FUZZ_EXAMPLES", "10000")), **_COMMON)
settings.register_profile("quick", max_examples=20, derandomize=True, **_COMMON)
settings.load_profile(os.environ.get("RECONCILER_FUZZ_PROFILE", "ci"))
