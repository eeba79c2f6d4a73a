"""Fuzzing the pipeline: mutated example-repo documents and commits never crash it.

Each case is example-repo/ with a few mutations (tests/fuzz/mutations.py). Properties:
no exception escapes loading, validating, building or generating; validation reports no
internal error; whatever validates also builds and generates every proxy's config (or gets
the one deliberate build-time rejection, a CaError; see tests/fuzz/pipeline.py).

`make test` runs the derandomized `ci` profile (about 30 s); `make fuzz` runs 10,000 random
cases per test (see tests/fuzz/conftest.py and docs/validation.md, "Fuzzing").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given

from reconciler.ca.provider import CertificateProvider
from reconciler.validate import ResourceValidator
from tests.fuzz.mutations import Case, cases, example_files
from tests.fuzz.pipeline import CommitRunner, run_files

# The serve-like runner keeps one CA for the module, as serve does; the document cases get a
# fresh one each (an RSA 2048 root costs about 20 ms), so mutated CA settings are exercised.
CERTS = CertificateProvider()
VALIDATOR = ResourceValidator()


@pytest.fixture(scope="module")
def commits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CommitRunner]:
    yield CommitRunner(tmp_path_factory.mktemp("fuzz") / "config.git", CERTS)


def test_the_unmutated_example_repo_validates_and_builds(commits: CommitRunner) -> None:
    """The starting point is valid, so mutations explore around a configuration that builds."""
    assert run_files(example_files(), CERTS, VALIDATOR, "example-repo").valid
    assert commits.run(example_files(), "example-repo").valid


@given(case=cases())
def test_mutated_documents_never_crash_and_what_validates_builds(case: Case) -> None:
    run_files(case.files, CertificateProvider(), VALIDATOR, case.describe())


@given(case=cases(max_steps=6))
def test_mutated_commits_never_crash_the_serve_engine(case: Case, commits: CommitRunner) -> None:
    commits.run(case.files, case.describe())


def test_fuzz_cases_include_valid_and_invalid_commits(tmp_path: Path) -> None:
    """The mutations are neither all harmless nor all fatal: both outcomes are exercised."""
    from hypothesis import HealthCheck, settings

    outcomes: set[bool] = set()

    @settings(max_examples=60, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=cases())
    def collect(case: Case) -> None:
        outcomes.add(run_files(case.files, CERTS, VALIDATOR, case.describe()).valid)

    collect()
    assert outcomes == {True, False}
