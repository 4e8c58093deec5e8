"""Cold start: a fresh interpreter imports the handler module and serves its first invocation."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.environment import ROOT, BenchEnvironment, write_event
from bench.paths import BASELINE, PATHS, FunctionPath


@dataclass
class ColdResult:
    path: FunctionPath
    import_ms: float
    first_ms: float
    boto3_loaded: bool

    @property
    def total_ms(self) -> float:
        return self.import_ms + self.first_ms


def function_env(path: FunctionPath, environment: BenchEnvironment) -> dict[str, str]:
    """A fresh interpreter's environment for ``path``'s function."""
    return {
        **{key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")},
        **environment.service_env(path.service),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "shared"), str(path.code_uri), str(ROOT)]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _run_once(path: FunctionPath, environment: BenchEnvironment, events: Path) -> dict[str, float]:
    event_file = write_event(events, path.make_event(environment))
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cold_child.py"), path.handler, str(event_file), str(path.timeout)],
        env=function_env(path, environment),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    measured: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    if measured["status"] not in (None, 200, 201) or measured["failures"]:
        raise RuntimeError(f"{path.name} did not succeed: {measured}\n{completed.stderr[-2000:]}")
    return measured


def measure_cold_starts(environment: BenchEnvironment, runs: int) -> tuple[ColdResult, list[ColdResult]]:
    """Median of ``runs`` per path; baseline and candidates interleaved run by run, so drift
    on the machine hits them alike."""
    measured = [path for path in PATHS if path.cold]
    samples: dict[str, list[dict[str, float]]] = {path.name: [] for path in [BASELINE, *measured]}
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(runs):
            for path in [BASELINE, *measured]:
                samples[path.name].append(_run_once(path, environment, Path(directory)))

    def median_of(path: FunctionPath) -> ColdResult:
        runs_of = samples[path.name]
        return ColdResult(
            path,
            statistics.median(run["import_ms"] for run in runs_of),
            statistics.median(run["first_ms"] for run in runs_of),
            any(run["boto3_loaded"] for run in runs_of),
        )

    return median_of(BASELINE), [median_of(path) for path in measured]
