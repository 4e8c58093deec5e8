"""The deployable artifact that `sam build` makes from template.yaml, read as Lambda will.

The artifact deploys for arm64, whose compiled wheels (pydantic_core, pymongo's C extensions...)
an x86_64 machine cannot load. So the same template is also built for this machine's architecture
(`make build-host`: a copy of template.yaml differing only in architecture, into .aws-sam/host),
which `python -m devstack invoke` runs. `check` proves the two artifacts differ only in platform
binaries and that every binary of the deployed one is aarch64; `sizes` measures each function
against Lambda's 250 MB limit.

    python -m devstack.artifact host-template   # writes .aws-sam/host/template.yaml
    python -m devstack.artifact check [--deployed DIR] [--host DIR]
"""

from __future__ import annotations

import argparse
import copy
import filecmp
import os
import platform
import re
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devstack.template import ROOT, TEMPLATE_PATH, Attributes, Resolver, Template, load_template

SAM_DIR = ROOT / ".aws-sam"
BUILD_DIR = SAM_DIR / "build"  # `sam build`: the artifact that deploys
HOST_DIR = SAM_DIR / "host"  # its own build.toml and cache: SAM keeps them beside the build dir
HOST_TEMPLATE = HOST_DIR / "template.yaml"
HOST_BUILD_DIR = HOST_DIR / "build"
DEPLOYED_ARCHITECTURE = "arm64"
# Lambda: a function's code and all its layers, unzipped, "must be smaller than 262144000 bytes".
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
MB = 1024 * 1024

LAMBDA_ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
# ELF e_machine values, named as in wheel platform tags.
ELF_MACHINES = {62: "x86_64", 183: "aarch64"}
ELF_MACHINE_OF = {"x86_64": "x86_64", "arm64": "aarch64"}


def host_architecture() -> str:
    """This machine's architecture as Lambda names it."""
    machine = platform.machine().lower()
    if machine not in LAMBDA_ARCHITECTURES:
        raise SystemExit(f"Lambda has no {machine} architecture")
    return LAMBDA_ARCHITECTURES[machine]


# ---------- the template for this machine ----------


def for_architecture(document: dict[str, Any], architecture: str, template_dir: Path) -> dict[str, Any]:
    """``document`` (template.yaml) with ``architecture`` wherever it names one, and its code and
    layer paths made relative to ``template_dir`` (where the copy is written); nothing else changes."""
    changed = copy.deepcopy(document)
    function_globals = changed.get("Globals", {}).get("Function", {})
    if "Architectures" in function_globals:
        function_globals["Architectures"] = [architecture]
    for resource in changed["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            if "Architectures" in properties:
                properties["Architectures"] = [architecture]
            properties["CodeUri"] = os.path.relpath(ROOT / properties["CodeUri"], template_dir)
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            if "CompatibleArchitectures" in properties:
                properties["CompatibleArchitectures"] = [architecture]
            if "BuildArchitecture" in resource.get("Metadata", {}):
                resource["Metadata"]["BuildArchitecture"] = architecture
            properties["ContentUri"] = os.path.relpath(ROOT / properties["ContentUri"], template_dir)
    return changed


class _NoAliases(yaml.SafeDumper):
    """Writes shared nodes (the template's YAML anchors) out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_host_template(destination: Path = HOST_TEMPLATE) -> Path:
    document = for_architecture(load_template(TEMPLATE_PATH), host_architecture(), destination.parent)
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(
        "# Written by `python -m devstack.artifact host-template` from template.yaml: only the architecture differs.\n"
        + yaml.dump(document, Dumper=_NoAliases, sort_keys=False, width=200)
    )
    return destination


# ---------- what a build holds ----------


@dataclass(frozen=True)
class BuiltFunction:
    """One function of a built template, with its Globals applied."""

    name: str  # logical id
    properties: dict[str, Any]  # unresolved, Globals merged in
    code_dir: Path
    layers: dict[str, Path]  # layer logical id -> its built folder (the layer zip's root), in order


class BuildError(Exception):
    """The build is missing something a function needs."""


class BuiltTemplate:
    """The template `sam build` writes into its build dir, whose code paths point into that dir."""

    def __init__(self, build_dir: Path) -> None:
        path = build_dir / "template.yaml"
        if not path.exists():
            raise BuildError(f"No built template at {path}: build it first (make build / make build-host)")
        self.build_dir = build_dir
        self.template = Template(load_template(path))
        self.resolver = Resolver(self.template.default_parameters(), self.template.document.get("Conditions", {}))
        # As SAM resolves them locally: !Ref of a resource is its logical id.
        self.resolver.resources = {name: Attributes(name) for name in self.template.resources}

    def function_names(self) -> list[str]:
        return sorted(self.template.of_type("AWS::Serverless::Function"))

    def function(self, name: str) -> BuiltFunction:
        functions = self.template.of_type("AWS::Serverless::Function")
        if name not in functions:
            raise BuildError(f"No function {name} in {self.build_dir}; there are: {', '.join(sorted(functions))}")
        own = functions[name]
        merged = {**self.template.globals, **own}
        merged["Environment"] = {
            "Variables": {
                **self.template.globals.get("Environment", {}).get("Variables", {}),
                **own.get("Environment", {}).get("Variables", {}),
            }
        }
        # SAM appends a function's own layers to the global ones.
        merged["Layers"] = [*self.template.globals.get("Layers", []), *own.get("Layers", [])]
        code_dir = self.build_dir / own["CodeUri"]
        if not code_dir.is_dir():
            raise BuildError(f"{name}'s code {code_dir} is not in the build")
        return BuiltFunction(name, merged, code_dir, self._layers(name, merged["Layers"]))

    def _layers(self, function: str, references: list[Any]) -> dict[str, Path]:
        layer_resources = self.template.of_type("AWS::Serverless::LayerVersion")
        layers = {}
        for reference in references:
            name = self.resolver.resolve(reference)
            if name is None:
                continue  # AWS::NoValue: a condition left the layer out
            if name not in layer_resources:
                raise BuildError(f"{function}'s layer {name} is not part of this build (only the template's own run)")
            folder = self.build_dir / layer_resources[name]["ContentUri"]
            if not folder.is_dir():
                raise BuildError(f"{function}'s layer {name} ({folder}) is not in the build")
            layers[name] = folder
        return layers


# ---------- the deployed artifact against the host one ----------


def elf_machine(path: Path) -> str | None:
    """The architecture an ELF file is for (as wheel tags name it); None for a file that is no ELF."""
    with path.open("rb") as file:
        header = file.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")  # e_machine, in EI_DATA's order
    return ELF_MACHINES.get(machine, f"machine {machine}")


def _files(root: Path) -> Iterator[Path]:
    for directory, _, names in os.walk(root):
        for name in names:
            yield Path(directory, name).relative_to(root)


# Wheel metadata that differs per platform: its tags (WHEEL), its binaries' names and hashes (RECORD),
# its software bill of materials (each wheel build's own serial number and time).
PLATFORM_METADATA = re.compile(r"\.dist-info/(WHEEL$|RECORD$|sboms/)")
ARCHITECTURE_IN_NAME = re.compile(r"aarch64|x86_64|arm64|amd64")


def compare_builds(deployed: Path, host: Path) -> list[str]:
    """What keeps ``deployed`` (arm64) from being ``host`` built for another architecture: a file
    only in one, a differing file that is neither a binary nor wheel platform metadata, an ELF
    binary of the deployed artifact that is not aarch64. Empty: only the architecture differs."""
    problems = []
    deployed_files = {path for path in _files(deployed) if path != Path("template.yaml")}
    host_files = {path for path in _files(host) if path != Path("template.yaml")}
    binaries = {path for path in deployed_files if elf_machine(deployed / path)}
    host_binaries = {path for path in host_files if elf_machine(host / path)}
    for path in sorted(binaries):
        machine = elf_machine(deployed / path)
        if machine != ELF_MACHINE_OF[DEPLOYED_ARCHITECTURE]:
            problems.append(f"{path}: a {machine} binary in the {DEPLOYED_ARCHITECTURE} artifact")

    def platform_free(paths: set[Path]) -> set[str]:
        return {ARCHITECTURE_IN_NAME.sub("<arch>", str(path)) for path in paths}

    for missing in sorted(platform_free(binaries) ^ platform_free(host_binaries)):
        problems.append(f"{missing}: a binary of only one of the two artifacts")
    for path in sorted((deployed_files - binaries) ^ (host_files - host_binaries)):
        side = "deployed" if path in deployed_files else "host"
        problems.append(f"{path}: only in the {side} artifact")
    for path in sorted((deployed_files - binaries) & (host_files - host_binaries)):
        if not PLATFORM_METADATA.search(str(path)) and not filecmp.cmp(deployed / path, host / path, shallow=False):
            problems.append(f"{path}: differs between the artifacts")
    return problems


def check_architectures(deployed: Path) -> list[str]:
    """Every function and layer of the deployed template is built for arm64."""
    built = BuiltTemplate(deployed)
    problems = []
    for name in built.function_names():
        architectures = built.function(name).properties.get("Architectures", ["x86_64"])
        if architectures != [DEPLOYED_ARCHITECTURE]:
            problems.append(f"{name}: Architectures {architectures}")
    for name, properties in built.template.of_type("AWS::Serverless::LayerVersion").items():
        if properties.get("CompatibleArchitectures") != [DEPLOYED_ARCHITECTURE]:
            problems.append(f"{name}: CompatibleArchitectures {properties.get('CompatibleArchitectures')}")
    return problems


# ---------- sizes ----------


def unzipped_bytes(folder: Path) -> int:
    return sum((folder / path).stat().st_size for path in _files(folder))


def zipped_bytes(folder: Path) -> int:
    """The size of ``folder`` zipped with deflate, as `sam deploy` zips it for upload."""
    with tempfile.TemporaryFile() as archive:
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
            for path in sorted(_files(folder)):
                zipped.write(folder / path, str(path))
        return archive.tell()


@dataclass(frozen=True)
class Package:
    """A function's code or a layer: what Lambda unzips."""

    name: str
    unzipped: int
    zipped: int


@dataclass(frozen=True)
class FunctionSize:
    function: str
    code: Package
    layers: list[Package]

    @property
    def unzipped(self) -> int:
        return self.code.unzipped + sum(layer.unzipped for layer in self.layers)

    @property
    def zipped(self) -> int:
        return self.code.zipped + sum(layer.zipped for layer in self.layers)


def deployment_sizes(build_dir: Path) -> list[FunctionSize]:
    built = BuiltTemplate(build_dir)
    measured: dict[Path, Package] = {}

    def package(name: str, folder: Path) -> Package:
        if folder not in measured:  # every function shares the layers: measured once
            measured[folder] = Package(name, unzipped_bytes(folder), zipped_bytes(folder))
        return measured[folder]

    sizes = []
    for name in built.function_names():
        function = built.function(name)
        layers = [package(layer, folder) for layer, folder in function.layers.items()]
        sizes.append(FunctionSize(name, package(name, function.code_dir), layers))
    return sizes


def size_table(sizes: list[FunctionSize]) -> str:
    header = f"{'function':<30} {'code':>9} {'layers':>9} {'unzipped':>9} {'of 250 MB':>9} {'zipped':>9}"
    lines = [header, "-" * len(header)]
    for size in sizes:
        layers = size.unzipped - size.code.unzipped
        lines.append(
            f"{size.function:<30} {size.code.unzipped / MB:>6.2f} MB {layers / MB:>6.2f} MB "
            f"{size.unzipped / MB:>6.2f} MB {size.unzipped / UNZIPPED_LIMIT_BYTES:>9.1%} {size.zipped / MB:>6.2f} MB"
        )
    shared = {layer.name: layer for size in sizes for layer in size.layers}
    lines.append("")
    lines.extend(
        f"layer {layer.name:<24} {layer.unzipped / MB:>6.2f} MB unzipped {layer.zipped / MB:>6.2f} MB zipped"
        for layer in shared.values()
    )
    return "\n".join(lines)


def print_sizes(build_dir: Path) -> int:
    """The `sizes` command: 1 if a function is over the limit."""
    sizes = deployment_sizes(build_dir)
    print(f"{build_dir}: unzipped, Lambda's limit per function with its layers; zipped (deflate), as uploaded")
    print(size_table(sizes))
    return 0 if all(size.unzipped < UNZIPPED_LIMIT_BYTES for size in sizes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.artifact", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("host-template", help="write template.yaml for this machine's architecture")
    check = commands.add_parser("check", help="the deployed artifact differs from the host one only in binaries")
    check.add_argument("--deployed", type=Path, default=BUILD_DIR)
    check.add_argument("--host", type=Path, default=HOST_BUILD_DIR)
    args = parser.parse_args(argv)
    if args.command == "host-template":
        print(write_host_template())
        return 0
    problems = check_architectures(args.deployed) + compare_builds(args.deployed, args.host)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    binaries = sum(1 for path in _files(args.deployed) if elf_machine(args.deployed / path))
    print(f"{args.deployed}: {binaries} binaries, all aarch64; otherwise the same files as {args.host}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
