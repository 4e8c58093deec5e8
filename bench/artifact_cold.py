"""Cold start of the built artifact as Lambda's python3.13 imports it: a fresh `python3.13 -I -S`
with only the function's code, its layers and the standard library on sys.path (the host build,
`make build-host`), timing the handler module's import. Once from source only (what `sam build`
alone ships: Lambda's code folders are read-only, so Python compiles every module at each cold
start) and once with the bytecode `make build` adds; the naive baseline module is imported the
same way, with bytecode, in the same run."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.environment import ROOT
from devstack.artifact import HOST_BUILD_DIR, BuiltTemplate
from devstack.lambda_runtime import LambdaFunction, find_python

IMPORT = """
import importlib, json, sys, time
sys.path[:0] = json.loads(sys.argv[1])
started = time.perf_counter()
importlib.import_module(sys.argv[2])
print(json.dumps((time.perf_counter() - started) * 1000))
"""
# What importing needs (Powertools reads these at import); nothing is called.
IMPORT_ENV = {
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "Shop",
    "MONGODB_URI": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=1",
    "MONGODB_DATABASE": "bench",
}


@dataclass
class ArtifactColdResult:
    function: str
    module: str
    source_ms: float  # the module compiled from source, as `sam build` alone ships it
    bytecode_ms: float  # with the bytecode `make build` compiles into the artifact


def _import_ms(python: str, path: list[Path], module: str) -> float:
    completed = subprocess.run(
        [python, "-I", "-S", "-B", "-c", IMPORT, json.dumps([str(p) for p in path]), module],
        env={"PATH": os.environ.get("PATH", ""), **IMPORT_ENV},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return float(json.loads(completed.stdout.strip().splitlines()[-1]))


def _without_bytecode(build: Path, into: Path) -> Path:
    shutil.copytree(build, into, ignore=shutil.ignore_patterns("__pycache__"))
    return into


def measure_artifact_cold_starts(runs: int) -> tuple[float, list[ArtifactColdResult]] | None:
    """The baseline's import (ms) and each function's, median of ``runs``; None without a host build."""
    if not (HOST_BUILD_DIR / "template.yaml").exists():
        return None
    python = find_python()
    built = BuiltTemplate(HOST_BUILD_DIR)
    functions = [LambdaFunction.from_build(built, name) for name in built.function_names()]
    baseline_path = [ROOT / "bench", *functions[0].layer_dirs]  # bench/baseline_handler.py on the layers
    samples: dict[str, list[float]] = {"baseline": []}
    with tempfile.TemporaryDirectory() as directory:
        source_only = _without_bytecode(HOST_BUILD_DIR, Path(directory) / "build")
        for _ in range(runs):
            samples["baseline"].append(_import_ms(python, baseline_path, "baseline_handler"))
            for function in functions:
                module = function.handler.rpartition(".")[0]
                path = [function.code_dir, *function.layer_dirs]
                copied = [source_only / p.relative_to(HOST_BUILD_DIR) for p in path]
                samples.setdefault(f"{function.name}/bytecode", []).append(_import_ms(python, path, module))
                samples.setdefault(f"{function.name}/source", []).append(_import_ms(python, copied, module))
    results = [
        ArtifactColdResult(
            function.name,
            function.handler.rpartition(".")[0],
            statistics.median(samples[f"{function.name}/source"]),
            statistics.median(samples[f"{function.name}/bytecode"]),
        )
        for function in functions
    ]
    return statistics.median(samples["baseline"]), results
