"""Which AWS operations a Lambda function's code can call, found statically from its handler.

Statically, because a run sees only the paths its events take, and a role must allow the others
too (a publish after a failure, a provider that is down). Function by function rather than module
by module, because every service's functions import the same shared modules (the outbox, which
publishes) while only some of them ever publish.

Reachability is followed from the handler, by name:
- the code that runs at import (module and class bodies, decorators) of every module the handler
  imports, transitively, imports inside functions included (they are the lazy paths), and every
  top-level function of the handler module (its routes and record handlers, which decorators
  register);
- from reached code, every definition of the imported modules whose name it mentions: a call, a
  method or callback passed along, a property read;
- a reached class reaches its dunder methods, and all of its methods if it extends a library class
  (the library calls them: a persistence layer, a validator).
Matching by name over-approximates (``x.get`` reaches every ``get``) but misses no call the code
spells out (one made through ``getattr`` it would miss: tests/integration/test_function_calls.py
would catch it when it runs). The AWS operations are then:
- a botocore operation called (or passed) by its Python name, ``publish_batch``, in code that
  also reached a client of that service, ``create_client("sns", ...)`` or ``boto3.client("sns")``;
- the calls a library makes for the code (LIBRARY_CALLS), and those of the Parameters and Secrets
  Lambda extension, which reads with the function's role (EXTENSION_PATHS).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any


@dataclass(frozen=True, order=True)
class AwsCall:
    service: str  # botocore's name of the service
    operation: str  # the API's name of the operation


# Library names whose use makes AWS calls on the code's behalf.
LIBRARY_CALLS = {"SecretsProvider": AwsCall("secretsmanager", "GetSecretValue")}  # Powertools parameters
# The extension's HTTP paths on localhost, each an AWS call with the function's role.
EXTENSION_PATHS = {
    "/secretsmanager/get": AwsCall("secretsmanager", "GetSecretValue"),
    "/systemsmanager/parameters/get": AwsCall("ssm", "GetParameter"),
}
CLIENT_FACTORIES = frozenset({"client", "create_client"})
# A dotted name in a string may be a module imported by name (importlib.import_module).
DOTTED_NAME = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+")
NOT_LIBRARY_BASES = frozenset({"object", "Protocol", "Generic"})


@dataclass(frozen=True)
class Reach:
    calls: dict[AwsCall, str]  # each operation, and the code (module: definition) that calls it
    strings: frozenset[str]  # the string constants of the reached code: the environment variables read among them


@dataclass(frozen=True)
class _Code:
    """Code that may run: a definition, or the import-time statements of a module."""

    where: str
    nodes: tuple[ast.AST, ...]


class _CodeBase:
    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = roots

    def path_of(self, module: str) -> Path | None:
        for root in self.roots:
            base = root.joinpath(*module.split("."))
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    return candidate
        return None

    def closure(self, start: str) -> dict[str, ast.Module]:
        """``start`` and every module of the code roots it imports, transitively."""
        modules: dict[str, ast.Module] = {}
        pending = [start]
        while pending:
            module = pending.pop()
            path = self.path_of(module)
            if module in modules or path is None:
                continue
            modules[module] = tree = ast.parse(path.read_text(), str(path))
            pending.extend(_imported(tree, module, path.name == "__init__.py"))
        return modules


def _imported(tree: ast.Module, module: str, is_package: bool) -> Iterator[str]:
    """The modules ``tree`` may import, with their parent packages (which run first)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, node.module] if node.module else package)
            else:
                base = node.module or ""
            names.append(base)
            names.extend(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and DOTTED_NAME.fullmatch(node.value):
            names.append(node.value)
    for name in names:
        parts = name.split(".")
        yield from (".".join(parts[:end]) for end in range(1, len(parts) + 1))


def _import_time(statement: ast.stmt) -> list[ast.AST]:
    """What of a top-level statement runs at import: not the bodies of functions."""
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
        arguments = statement.args
        return [*statement.decorator_list, *arguments.defaults, *(d for d in arguments.kw_defaults if d)]
    if isinstance(statement, ast.ClassDef):
        parts: list[ast.AST] = [*statement.bases, *statement.keywords, *statement.decorator_list]
        for inner in statement.body:
            parts.extend(_import_time(inner))
        return parts
    return [statement]


def _name_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):  # Generic[T], BaseModel[...]
        return _name_of(node.value)
    return None


class _Index:
    """Every function, method and class of the modules, by name."""

    def __init__(self, modules: dict[str, ast.Module]) -> None:
        self.functions: dict[str, list[_Code]] = {}
        self.classes: dict[str, list[tuple[str, ast.ClassDef]]] = {}
        for module, tree in modules.items():
            self._add(tree, f"{module}: ")

    def _add(self, node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions.setdefault(child.name, []).append(_Code(prefix + child.name, (child,)))
                self._add(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                self.classes.setdefault(child.name, []).append((prefix + child.name, child))
                self._add(child, f"{prefix}{child.name}.")
            else:
                self._add(child, prefix)

    def members(self, where: str, cls: ast.ClassDef) -> Iterator[_Code]:
        """What reaching ``cls`` runs: its dunder methods; all its methods if a library calls them."""
        extends_library = any(
            (name := _name_of(base)) is not None and name not in self.classes and name not in NOT_LIBRARY_BASES
            for base in cls.bases
        )
        for item in cls.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and (
                extends_library or (item.name.startswith("__") and item.name.endswith("__"))
            ):
                yield _Code(f"{where}.{item.name}", (item,))


@cache
def _operations(service: str) -> dict[str, str]:
    """The service's operations by their Python name (``publish_batch`` -> ``PublishBatch``)."""
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(operation): operation for operation in model.operation_names}


def reach(code_roots: Sequence[Path], handler: str) -> Reach:
    """The AWS operations the function whose ``handler`` ("package.module.attribute") is in
    ``code_roots`` (its code, then its layers) may call."""
    handler_module = handler.rpartition(".")[0]
    modules = _CodeBase(code_roots).closure(handler_module)
    assert handler_module in modules, f"{handler_module} is not in {[str(root) for root in code_roots]}"
    walk = _Walk(_Index(modules))
    walk.pending = [
        _Code(f"{module}: <import>", tuple(part for s in tree.body for part in _import_time(s)))
        for module, tree in modules.items()
    ]
    walk.pending += [
        _Code(f"{handler_module}: {statement.name}", (statement,))
        for statement in modules[handler_module].body
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    walk.run()
    calls = dict(walk.calls)
    for service in walk.services:
        for python_name, operation in _operations(service).items():
            if python_name in walk.names:
                calls.setdefault(AwsCall(service, operation), walk.names[python_name])
    return Reach(calls=calls, strings=frozenset(walk.strings))


class _Walk:
    """Reached code, visited once each, and what it holds: names, clients, strings, library calls."""

    def __init__(self, index: _Index) -> None:
        self.index = index
        self.pending: list[_Code] = []
        self.done: set[str] = set()
        self.names: dict[str, str] = {}  # each name mentioned, and where first
        self.services: dict[str, str] = {}  # each service a client is built for, and where first
        self.strings: set[str] = set()
        self.calls: dict[AwsCall, str] = {}

    def run(self) -> None:
        while self.pending:
            code = self.pending.pop()
            if code.where not in self.done:
                self.done.add(code.where)
                for node in (inner for root in code.nodes for inner in ast.walk(root)):
                    self._see(node, code.where)

    def _see(self, node: ast.AST, where: str) -> None:
        if isinstance(node, ast.Name | ast.Attribute):
            name = str(_name_of(node))
            self.names.setdefault(name, where)
            self.pending.extend(self.index.functions.get(name, []))
            for class_where, cls in self.index.classes.get(name, []):
                self.pending.extend(self.index.members(class_where, cls))
            if name in LIBRARY_CALLS:
                self.calls.setdefault(LIBRARY_CALLS[name], where)
        elif isinstance(node, ast.Call) and _name_of(node.func) in CLIENT_FACTORIES and _first_string(node):
            self.services.setdefault(str(_first_string(node)), where)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            self.strings.add(node.value)
            for path, call in EXTENSION_PATHS.items():
                if path in node.value:
                    self.calls.setdefault(call, where)


def _first_string(call: ast.Call) -> Any:
    first = call.args[0] if call.args else None
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
