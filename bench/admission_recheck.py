"""What re-checking a stream's token costs before each config it gets (xds/security.py).

Every new config of a node passes `DataplaneAuthenticator.recheck` for each stream of that
node, so a commit that changes N proxies pays N re-checks. Measured on a snapshot with one
mesh, a MeshIdentity and D git Dataplanes:

  git dataplane        a tag-bound token against a Dataplane declared in git
  registered           a workload-bound token against a Dataplane from node metadata that
                       the MeshIdentity selects (its identity check is cached per resource)
  new snapshot         the first re-check after a commit (indexes the git Dataplanes)

Usage: .venv/bin/python bench/admission_recheck.py [--dataplanes 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.ca.signing_keys import SigningKeys
from reconciler.ca.tokens import issue_token, verify_token
from reconciler.model import Snapshot
from reconciler.source.loader import load_file
from reconciler.xds.admission import DataplaneAuthenticator
from reconciler.xds.security import XdsCall
from tests.security.test_identity_binding import MTLS_MESH, ORDERS_IDENTITY
from tests.support import dataplane_yaml


async def measure(dataplanes: int) -> None:
    docs = [MTLS_MESH, ORDERS_IDENTITY] + [
        dataplane_yaml(f"dp-{i}", f"svc-{i % 50}", 10000 + i % 20000, 40000 + i % 20000) for i in range(dataplanes)
    ]
    files = [
        load_file(f"bench-{i}.yaml", "---\n".join(docs[i : i + 500]).encode()) for i in range(0, len(docs), 500)
    ]  # a file's own limits
    snapshot = Snapshot(None, tuple(r for f in files for r in f.resources), tuple(p for f in files for p in f.problems), 1)
    assert not snapshot.problems, snapshot.problems[:3]
    keys = SigningKeys.open(tempfile.mkdtemp(prefix="bench-keys-"))
    registered = load_file(
        "rt.yaml", dataplane_yaml("rt", "svc-1", 30000, 30001, labels={"kuma.io/workload": "orders"}).encode()
    ).resources[0]
    auth = DataplaneAuthenticator(keys)
    auth.use(snapshot)
    git_call = XdsCall(
        {}, "bench", "default.dp-7", verify_token(issue_token(keys, mesh="default", tags={"kuma.io/service": ["svc-7"]}), keys)
    )
    tags = {"kuma.io/service": ["svc-1"]}
    rt_call = XdsCall({}, "bench", "default.rt", verify_token(issue_token(keys, mesh="default", tags=tags, workload="orders"), keys))
    for call, reg in ((git_call, None), (rt_call, registered)):
        refused = auth.recheck(call, reg)
        assert refused is None, refused
    n = 20000
    per_git = timeit.timeit(lambda: auth.recheck(git_call, None), number=n) / n
    per_registered = timeit.timeit(lambda: auth.recheck(rt_call, registered), number=n) / n
    fresh = DataplaneAuthenticator(keys)
    rounds = 50
    first = timeit.timeit(lambda: (fresh.use(None), fresh.use(snapshot), fresh.recheck(git_call, None)), number=rounds) / rounds
    print(f"dataplanes in git: {dataplanes}")
    print(f"git dataplane:  {per_git * 1e6:.1f} us per re-check")
    print(f"registered:     {per_registered * 1e6:.1f} us per re-check")
    print(f"new snapshot:   {first * 1e3:.2f} ms for the first re-check")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataplanes", type=int, default=1000)
    asyncio.run(measure(parser.parse_args().dataplanes))


if __name__ == "__main__":
    main()
