"""First request after a SnapStart restore, locally: per function path, one snapshot process (the
handler imported, the before-snapshot hooks run) forks a container per run, which runs the
after-restore hooks and serves its first invocation, timed from just before the fork to the answer.

A fork is not a Firecracker restore: Lambda also loads the snapshot's memory (its restore
duration), and pages touched first after a fork are copied then, a cost Lambda's lazy loading
has too. What is measured is what the function's own code costs a restored container."""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.cold_start import require_success, run_child
from bench.environment import BenchEnvironment, write_event
from bench.paths import PATHS, FunctionPath


@dataclass
class RestoreResult:
    path: FunctionPath
    hooks_ms: float  # the after-restore hooks
    first_ms: float  # the first invocation
    total_ms: float  # from just before the fork to the answer


def _restore_runs(path: FunctionPath, environment: BenchEnvironment, events: Path, runs: int) -> list[dict[str, float]]:
    event_files = [str(write_event(events, path.make_event(environment))) for _ in range(runs)]
    measured, stderr = run_child("restore_child.py", path, environment, [str(path.timeout), *event_files], 120)
    for run in measured:
        require_success(path, run, stderr, " after a restore")
    return list(measured)


def measure_restores(environment: BenchEnvironment, runs: int) -> list[RestoreResult]:
    """Median of ``runs`` restores per path measured at cold start, all from one snapshot per path,
    as Lambda restores every container of a published version from one snapshot."""
    results = []
    with tempfile.TemporaryDirectory() as directory:
        for path in [path for path in PATHS if path.cold]:
            measured = _restore_runs(path, environment, Path(directory), runs)
            results.append(
                RestoreResult(
                    path,
                    statistics.median(run["hooks_ms"] for run in measured),
                    statistics.median(run["first_ms"] for run in measured),
                    statistics.median(run["total_ms"] for run in measured),
                )
            )
    return results
