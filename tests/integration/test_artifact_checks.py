"""The deployed arm64 artifact against the host one, and the deployment size report.

The arm64 build (`make build`, what deploys) cannot run here; the host build (`make build-host`)
does, in tests/integration/test_artifact.py. These tests prove the two differ only in platform
binaries, that every binary deployed is aarch64, that the checker itself catches what it must,
and that every function fits Lambda's 250 MB (unzipped, with its layers).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack.artifact import (
    BUILD_DIR,
    HOST_BUILD_DIR,
    UNZIPPED_LIMIT_BYTES,
    check_architectures,
    compare_builds,
    elf_machine,
    for_architecture,
)
from devstack.lambda_runtime import find_python
from devstack.template import ROOT, TEMPLATE_PATH, load_template
from tests.artifacts import require

EM_X86_64, EM_AARCH64 = 62, 183


def elf(machine: int) -> bytes:
    """The start of a 64-bit little-endian ELF shared object for ``machine``: what elf_machine reads."""
    return b"\x7fELF\x02\x01\x01" + bytes(9) + (3).to_bytes(2, "little") + machine.to_bytes(2, "little") + bytes(44)


@pytest.fixture
def builds() -> tuple[Path, Path]:
    require(BUILD_DIR / "template.yaml", "the arm64 build; `make build` builds it")
    require(HOST_BUILD_DIR / "template.yaml", "the host build; `make build-host` builds it")
    return BUILD_DIR, HOST_BUILD_DIR


def test_the_deployed_artifact_is_the_host_one_built_for_arm64(builds: tuple[Path, Path]) -> None:
    deployed, host = builds
    assert check_architectures(deployed) == []
    assert compare_builds(deployed, host) == []
    binaries = {path.name: elf_machine(path) for path in deployed.rglob("*.so")}
    assert any(name.startswith("_pydantic_core.") for name in binaries)  # the checks saw the compiled wheels
    assert set(binaries.values()) == {"aarch64"}


def test_the_host_template_differs_from_template_yaml_only_in_architecture() -> None:
    template = load_template(TEMPLATE_PATH)
    other = for_architecture(template, "x86_64", ROOT)  # written beside template.yaml: paths unchanged
    assert other["Globals"]["Function"]["Architectures"] == ["x86_64"]
    layers = [r for r in other["Resources"].values() if r["Type"] == "AWS::Serverless::LayerVersion"]
    assert {(r["Properties"]["CompatibleArchitectures"][0], r["Metadata"]["BuildArchitecture"]) for r in layers} == {
        ("x86_64", "x86_64")
    }
    assert for_architecture(other, "arm64", ROOT) == template  # and nothing else changed


def _code_paths(template: dict[str, Any], template_dir: Path) -> dict[str, Path]:
    """Each function's CodeUri and each layer's ContentUri, resolved."""
    return {
        name: (template_dir / uri).resolve()
        for name, resource in template["Resources"].items()
        if (uri := resource.get("Properties", {}).get("CodeUri") or resource.get("Properties", {}).get("ContentUri"))
    }


def test_the_host_template_points_at_the_same_code() -> None:
    template = load_template(TEMPLATE_PATH)
    elsewhere = ROOT / ".aws-sam" / "host"
    assert _code_paths(for_architecture(template, "x86_64", elsewhere), elsewhere) == _code_paths(template, ROOT)


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for path, content in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(content)
    return root


SAME = {
    "Fn/app.py": b"print('hello')\n",
    "Layer/python/lib/_speed.cpython-313-{arch}-linux-gnu.so": b"",  # the binary: filled in per side
    "Layer/python/lib-1.0.dist-info/WHEEL": b"Tag: cp313-cp313-manylinux_2_17_{arch}\n",
}


def _artifacts(tmp_path: Path, deployed_extra: dict[str, bytes], host_extra: dict[str, bytes]) -> tuple[Path, Path]:
    def side(arch: str, machine: int) -> dict[str, bytes]:
        files = {path.format(arch=arch): content.replace(b"{arch}", arch.encode()) for path, content in SAME.items()}
        files[f"Layer/python/lib/_speed.cpython-313-{arch}-linux-gnu.so"] = elf(machine)
        return files

    deployed = _tree(tmp_path / "deployed", side("aarch64", EM_AARCH64) | deployed_extra)
    host = _tree(tmp_path / "host", side("x86_64", EM_X86_64) | host_extra)
    return deployed, host


def test_two_artifacts_differing_only_in_binaries_and_their_wheel_tags_pass(tmp_path: Path) -> None:
    assert compare_builds(*_artifacts(tmp_path, {}, {})) == []


@pytest.mark.parametrize(
    ("deployed_extra", "host_extra", "problem"),
    [
        ({"Layer/python/lib/_x.so": elf(EM_X86_64)}, {"Layer/python/lib/_x.so": elf(EM_X86_64)}, "a x86_64 binary"),
        ({"Fn/app.py": b"print('changed')\n"}, {}, "Fn/app.py: differs"),
        ({"Fn/extra.py": b""}, {}, "Fn/extra.py: only in the deployed artifact"),
        ({}, {"Fn/missing.py": b""}, "Fn/missing.py: only in the host artifact"),
        ({}, {"Layer/python/lib/_more.cpython-313-x86_64-linux-gnu.so": elf(EM_X86_64)}, "a binary of only one"),
    ],
)
def test_the_check_catches_what_is_not_the_architecture(
    tmp_path: Path, deployed_extra: dict[str, bytes], host_extra: dict[str, bytes], problem: str
) -> None:
    problems = compare_builds(*_artifacts(tmp_path, deployed_extra, host_extra))
    assert any(problem in found for found in problems), problems


def test_the_size_report_puts_every_function_under_lambdas_limit(builds: tuple[Path, Path]) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "devstack", "sizes"], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    row = re.compile(
        r"^(\w+)\s+([\d.]+) MB\s+([\d.]+) MB\s+([\d.]+) MB\s+([\d.]+)%\s+([\d.]+) MB$",
    )
    rows = {
        match[1]: [float(value) for value in match.groups()[1:]]
        for match in map(row.match, completed.stdout.splitlines())
        if match
    }
    functions = load_template(BUILD_DIR / "template.yaml")["Resources"]
    assert sorted(rows) == sorted(name for name, r in functions.items() if r["Type"] == "AWS::Serverless::Function")
    limit_mb = UNZIPPED_LIMIT_BYTES / 1024 / 1024
    for function, (code, layers, unzipped, share, zipped) in rows.items():
        assert code > 0 and layers > 0, function
        assert unzipped == pytest.approx(code + layers, abs=0.02), function
        assert share == pytest.approx(100 * unzipped / limit_mb, abs=0.1), function
        assert unzipped < limit_mb, function
        assert 0 < zipped < unzipped, function


# Runs in Lambda's python3.13 (-I -S): a .pyc is valid only for its interpreter's magic number and
# hash key. Counts, per build, the modules Python would compile from source at import.
BYTECODE_CHECK = """
import importlib.util, json, pathlib, sys
build = pathlib.Path(sys.argv[1])
sources = [path for path in build.rglob("*.py") if "__pycache__" not in path.parts]
stale = []
for source in sources:
    cached = pathlib.Path(importlib.util.cache_from_source(str(source)))
    data = cached.read_bytes() if cached.exists() else b""
    flags = int.from_bytes(data[4:8], "little") if len(data) >= 16 else 0
    valid = (
        data[:4] == importlib.util.MAGIC_NUMBER
        and flags == 0b11  # hash-based, source checked
        and data[8:16] == importlib.util.source_hash(source.read_bytes())
    )
    if not valid:
        stale.append(str(source.relative_to(build)))
print(json.dumps({"sources": len(sources), "stale": stale}))
"""


@pytest.mark.parametrize("build", [BUILD_DIR, HOST_BUILD_DIR], ids=["arm64", "host"])
def test_every_module_of_the_artifact_ships_its_bytecode(build: Path) -> None:
    """Lambda's code folders are read-only: a module without a valid .pyc is compiled from source
    at every cold start (about 700 ms instead of 230 ms for a handler's imports)."""
    require(build / "template.yaml", "`make build` / `make build-host` builds it (with its bytecode)")
    completed = subprocess.run(
        [find_python(), "-I", "-S", "-c", BYTECODE_CHECK, str(build)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result = json.loads(completed.stdout)
    assert result["sources"] > 1000  # the layers' packages were seen, not just our code
    assert result["stale"] == []
