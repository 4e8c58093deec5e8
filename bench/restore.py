"""First request after a SnapStart restore, locally: per function path, one snapshot process (the
handler imported, the before-snapshot hooks run) forks a container per run, which runs the
after-restore hooks and serves its first invocation, timed from just before the fork to the answer.

A fork is not a Firecracker restore: Lambda also loads the snapshot's memory (its restore
duration), and pages touched first after a fork are copied then, a cost Lambda's lazy loading
has too. What is measured is what the function's own code costs a restored container."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.cold_start import function_env
from bench.environment import ROOT, BenchEnvironment, write_event
from bench.paths import PATHS, FunctionPath


@dataclass
class RestoreResult:
    path: FunctionPath
    hooks_ms: float  # the after-restore hooks
    first_ms: float  # the first invocation
    total_ms: float  # from just before the fork to the answer


def _restore_runs(path: FunctionPath, environment: BenchEnvironment, events: Path, runs: int) -> list[dict[str, float]]:
    event_files = [str(write_event(events, path.make_event(environment))) for _ in range(runs)]
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "restore_child.py"), path.handler, str(path.timeout), *event_files],
        env=function_env(path, environment),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    measured: list[dict[str, float]] = json.loads(completed.stdout.strip().splitlines()[-1])
    for run in measured:
        if run["status"] not in (None, 200, 201) or run["failures"]:
            raise RuntimeError(f"{path.name} did not succeed after a restore: {run}\n{completed.stderr[-2000:]}")
    return measured


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
