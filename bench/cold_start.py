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
from typing import Any

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


def run_child(
    script: str, path: FunctionPath, environment: BenchEnvironment, arguments: list[str], timeout: float
) -> tuple[Any, str]:
    """Run ``bench/<script> HANDLER ARGUMENTS...`` in a fresh interpreter with ``path``'s function
    environment: what its last line of output says (JSON), and its stderr."""
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), path.handler, *arguments],
        env=function_env(path, environment),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1]), completed.stderr


def require_success(path: FunctionPath, run: dict[str, Any], stderr: str, when: str = "") -> None:
    """A measured invocation must have served its event: a failure would time something else."""
    if run["status"] not in (None, 200, 201) or run["failures"]:
        raise RuntimeError(f"{path.name} did not succeed{when}: {run}\n{stderr[-2000:]}")


def _run_once(path: FunctionPath, environment: BenchEnvironment, events: Path) -> dict[str, float]:
    event_file = write_event(events, path.make_event(environment))
    measured, stderr = run_child("cold_child.py", path, environment, [str(event_file), str(path.timeout)], 60)
    require_success(path, measured, stderr)
    return dict(measured)


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
