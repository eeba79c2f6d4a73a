"""How far `reconciler plan`'s Envoy check is, on stderr (stdout is the plan, and stays as it was).

On a terminal: click's progress bar (proxies checked of all, percentage, time left), redrawn
in place. Elsewhere (CI logs, a file): a line when the check starts, one at each quarter of a
long check, and a summary line at the end, as `git` does when its stderr is not a terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import click

from reconciler.commands.envoy_runs import EnvoyCheckResult, Progress

__all__ = ["envoy_progress", "summary_line"]

QUARTERS_FROM = 200
"""Checks of at least this many proxies also report each quarter when stderr is not a terminal."""


def summary_line(result: EnvoyCheckResult, seconds: float) -> str:
    n = len(result.verdicts)
    return (
        f"envoy: {n} prox{'y' if n == 1 else 'ies'} checked: {result.distinct} distinct config{'' if result.distinct == 1 else 's'}"
        f" in {result.runs} envoy run{'' if result.runs == 1 else 's'}, {seconds:.1f}s"
    )


@contextmanager
def envoy_progress(total: int, stream: TextIO | None = None) -> Iterator[Progress]:
    """A `Progress` callback for a check of `total` proxies, drawn on `stream` (stderr)."""
    out = stream or sys.stderr
    if out.isatty():
        with click.progressbar(length=total, label="envoy: validating proxies", file=out, show_pos=True, show_eta=True) as bar:
            yield bar.update
        return
    click.echo(f"envoy: validating {total} prox{'y' if total == 1 else 'ies'}", file=out)
    done = 0
    quarter = 0
    start = time.monotonic()

    def advance(n: int) -> None:
        nonlocal done, quarter
        done += n
        while total >= QUARTERS_FROM and quarter < 3 and done * 4 >= total * (quarter + 1):
            quarter += 1
            click.echo(f"envoy: {done}/{total} proxies checked ({time.monotonic() - start:.0f}s)", file=out)

    yield advance
