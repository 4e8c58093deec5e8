"""`sam local invoke` without Docker: one function of the built artifact, invoked once as Lambda's
python3.13 managed runtime would.

    python -m devstack invoke FUNCTION -e events/x.json [-n env.json] [--build-dir DIR]

It reads the built template (`DIR/template.yaml`, as `sam build` wrote it): the function's code,
handler, layers, timeout, memory and environment. The environment is resolved as SAM CLI does:
the template's variables (Globals merged, !Ref of a parameter its default, of a resource its
logical id, anything unresolvable empty), then the shell's and env.json's values, but only for
variables the template declares; then what Lambda itself sets (function name, memory, region,
handler...). The function runs in a python3.13 child started with ``-I -S -B``: no site-packages, no
PYTHON* variables, no bytecode written into the artifact; devstack/lambda_bootstrap.py sets its
sys.path as Lambda's runtime has it (the code, the layers' python folders, the standard library,
what the runtime ships: .aws-sam/lambda-runtime-python3.13, `make lambda-runtime`).

The result goes to stdout as JSON; the function's logs and then START/END/REPORT lines (init,
restore and invocation durations, memory) go to stderr; the exit status is 0 only when the
handler returned. A missing module or file, a wrong handler, a timeout fail as Lambda fails them.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.artifact import BuildError, BuiltTemplate, host_architecture
from devstack.template import ACCOUNT_ID, ROOT

RUNTIME = "python3.13"
RUNTIME_DIR = ROOT / ".aws-sam" / "lambda-runtime-python3.13"
BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")
INIT_LIMIT_SECONDS = 10  # Lambda's limit on an on-demand init phase
PLACEHOLDER_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "defaultkey", "AWS_SECRET_ACCESS_KEY": "defaultsecret"}  # as SAM


@dataclass(frozen=True)
class LambdaFunction:
    """A built function as Lambda configures it."""

    name: str  # logical id
    function_name: str
    handler: str
    code_dir: Path
    layer_dirs: list[Path]  # each layer's python folder, in the template's order (/opt/python)
    timeout: int
    memory_size: int
    snapstart: bool
    version: str  # "$LATEST", or the published version an alias points at
    variables: dict[str, str]  # the template's environment, resolved as SAM CLI does

    @classmethod
    def from_build(cls, built: BuiltTemplate, name: str) -> LambdaFunction:
        function = built.function(name)
        properties = function.properties
        if properties.get("Runtime") != RUNTIME:
            raise BuildError(f"{name} runs {properties.get('Runtime')}; this stands in for {RUNTIME} only")
        architecture = properties.get("Architectures", ["x86_64"])[0]
        if architecture != host_architecture():
            raise BuildError(
                f"{built.build_dir} is built for {architecture}; this machine runs {host_architecture()}: "
                "invoke the host build (make build-host, .aws-sam/host/build)"
            )
        layer_dirs = [folder / "python" for folder in function.layers.values()]
        for layer, folder in zip(function.layers, layer_dirs, strict=True):
            if not folder.is_dir():
                raise BuildError(f"{name}'s layer {layer} has no python folder ({folder}): Lambda would not import it")
        published = bool(properties.get("AutoPublishAlias"))
        return cls(
            name=name,
            function_name=str(_resolved(built, properties.get("FunctionName")) or name),
            handler=properties["Handler"],
            code_dir=function.code_dir,
            layer_dirs=layer_dirs,
            timeout=int(properties.get("Timeout", 3)),
            memory_size=int(properties.get("MemorySize", 128)),
            snapstart=published and properties.get("SnapStart", {}).get("ApplyOn") == "PublishedVersions",
            version="1" if published else "$LATEST",
            variables={
                variable: _stringified(_resolved(built, value))
                for variable, value in properties["Environment"]["Variables"].items()
            },
        )


def _resolved(built: BuiltTemplate, value: Any) -> Any:
    try:
        return built.resolver.resolve(value)
    except KeyError:  # an attribute only a deployed stack has (!GetAtt): SAM leaves it empty
        return None


def _stringified(value: Any) -> str:
    """As SAM CLI passes a value to the runtime: booleans lower-case, intrinsics and None empty."""
    if isinstance(value, dict | list) or value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def environment(
    function: LambdaFunction, overrides: Mapping[str, Any], shell: Mapping[str, str], region: str
) -> dict[str, str]:
    """The function's environment: its declared variables (env.json, then the shell, then the
    template, as SAM CLI ranks them; an undeclared variable in env.json is ignored, as SAM ignores
    it), then what Lambda sets. ``overrides`` is env.json: {"Parameters": {...}, FUNCTION: {...}}."""
    given = {
        **overrides.get("Parameters", {}),
        **overrides.get(function.name, overrides.get(function.function_name, {})),
    }
    declared = {
        name: _stringified(given[name]) if name in given else shell.get(name, default)
        for name, default in function.variables.items()
    }
    stream = f"{datetime.now(UTC):%Y/%m/%d}/[{function.version}]{uuid.uuid4().hex}"
    credentials = {name: shell.get(name, placeholder) for name, placeholder in PLACEHOLDER_CREDENTIALS.items()}
    if shell.get("AWS_SESSION_TOKEN"):
        credentials["AWS_SESSION_TOKEN"] = shell["AWS_SESSION_TOKEN"]
    return (
        declared
        | credentials
        | {
            "_HANDLER": function.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{RUNTIME}",
            "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": function.version,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start" if function.snapstart else "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "LAMBDA_TASK_ROOT": str(function.code_dir),
            "LAMBDA_RUNTIME_DIR": str(RUNTIME_DIR),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
        }
    )


def find_python() -> str:
    """Lambda's interpreter here: the one tools/python313.sh assembled, else the first python3.13
    on PATH that runs."""
    candidates = [ROOT / ".python3.13" / "bin" / RUNTIME]
    candidates += [Path(folder) / RUNTIME for folder in os.environ.get("PATH", "").split(os.pathsep) if folder]
    for candidate in candidates:
        if not os.access(candidate, os.X_OK):
            continue
        probe = subprocess.run(
            [str(candidate), "-I", "-S", "-c", "import sys; print(sys.version_info[:2] == (3, 13))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() == "True":
            return str(candidate)
    raise BuildError(f"No {RUNTIME} runs here: `make` assembles one (tools/python313.sh), or put one on PATH")


@dataclass
class Invocation:
    request_id: str
    result: Any = None
    error: dict[str, Any] | None = None  # Lambda's error payload: errorMessage, errorType, stackTrace
    init_ms: float | None = None
    restore_ms: float | None = None
    duration_ms: float | None = None
    max_memory_mb: int | None = None
    sys_path: list[str] = field(default_factory=list)
    runtime_modules: list[str] = field(default_factory=list)  # imported from what the runtime ships

    @property
    def ok(self) -> bool:
        return self.error is None


def invoke(
    function: LambdaFunction,
    event: Any,
    env: dict[str, str],
    python: str,
    request_id: str,
    runtime_dir: Path = RUNTIME_DIR,
) -> Invocation:
    """One cold invocation in a fresh execution environment (a child process), as Lambda runs it."""
    if not (runtime_dir / ".installed").exists():
        raise BuildError(f"What the {RUNTIME} runtime ships is not installed in {runtime_dir}: make lambda-runtime")
    arn = f"arn:aws:lambda:{env['AWS_REGION']}:{ACCOUNT_ID}:function:{function.function_name}"
    request = {
        "handler": function.handler,
        "task_root": str(function.code_dir),
        "layer_dirs": [str(folder) for folder in function.layer_dirs],
        "runtime_dir": str(runtime_dir),
        "snapstart": function.snapstart,
        "event": event,
        "timeout": function.timeout,
        "function_name": function.function_name,
        "function_version": function.version,
        "invoked_function_arn": arn if function.version == "$LATEST" else f"{arn}:{function.version}",
        "memory_size": function.memory_size,
        "request_id": request_id,
    }
    child = subprocess.Popen(
        [python, "-I", "-S", "-B", str(BOOTSTRAP)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        cwd=function.code_dir,
        text=True,
    )
    answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(target=_read_answers, args=(child, answers), daemon=True).start()
    assert child.stdin is not None
    child.stdin.write(json.dumps(request))
    child.stdin.close()
    invocation = Invocation(request_id)
    try:
        init = _next_answer(answers, child, INIT_LIMIT_SECONDS, "Init")
        invocation.sys_path = init["sys_path"]
        if "error" in init:
            invocation.error = init["error"]
            return invocation
        invocation.init_ms, invocation.restore_ms = init["init_ms"], init["restore_ms"]
        done = _next_answer(answers, child, function.timeout, "Task")
        invocation.result, invocation.error = done.get("result"), done.get("error")
        invocation.duration_ms, invocation.max_memory_mb = done["duration_ms"], done["max_memory_mb"]
        invocation.runtime_modules = done["runtime_modules"]
        if invocation.max_memory_mb > function.memory_size:
            invocation.error = _runtime_error(
                "Runtime.OutOfMemory", f"Used {invocation.max_memory_mb} MB of its {function.memory_size} MB"
            )
    except _Failed as failure:
        invocation.error = failure.error
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    return invocation


class _Failed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["errorMessage"])
        self.error = error


def _runtime_error(error_type: str, message: str) -> dict[str, Any]:
    return {"errorMessage": message, "errorType": error_type, "stackTrace": []}


def _read_answers(child: subprocess.Popen[str], answers: queue.Queue[dict[str, Any] | None]) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        answers.put(json.loads(line))
    answers.put(None)  # the child exited


def _next_answer(
    answers: queue.Queue[dict[str, Any] | None], child: subprocess.Popen[str], seconds: float, phase: str
) -> dict[str, Any]:
    try:
        answer = answers.get(timeout=seconds)
    except queue.Empty:
        raise _Failed(_runtime_error("Sandbox.Timedout", f"{phase} timed out after {seconds:.2f} seconds")) from None
    if answer is None:
        status = child.wait()
        raise _Failed(_runtime_error("Runtime.ExitError", f"Runtime exited with error: exit status {status}"))
    return answer


def report_lines(function: LambdaFunction, invocation: Invocation) -> list[str]:
    """Lambda's REPORT line for the invocation, then where the child's imports came from."""
    parts = [f"REPORT RequestId: {invocation.request_id}"]
    if invocation.init_ms is not None:
        parts.append(f"Init Duration: {invocation.init_ms:.2f} ms")
    if invocation.restore_ms is not None:
        parts.append(f"Restore Duration: {invocation.restore_ms:.2f} ms")
    if invocation.duration_ms is not None:
        parts.append(f"Duration: {invocation.duration_ms:.2f} ms")
    parts.append(f"Memory Size: {function.memory_size} MB")
    if invocation.max_memory_mb is not None:
        parts.append(f"Max Memory Used: {invocation.max_memory_mb} MB")
    if invocation.error is not None:
        parts.append(f"Status: error\tError Type: {invocation.error['errorType']}")
    return [
        "\t".join(parts),
        f"sys.path: {os.pathsep.join(invocation.sys_path)}",
        f"from the runtime: {', '.join(invocation.runtime_modules) or 'nothing'}",
    ]


def run(function_name: str, event_path: Path | None, env_json: Path | None, build_dir: Path, region: str) -> int:
    """The `invoke` command: 0 when the handler returned, 1 otherwise."""
    try:
        function = LambdaFunction.from_build(BuiltTemplate(build_dir), function_name)
        python = find_python()
    except BuildError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    if event_path is None:
        event: Any = {}
    else:
        event = json.loads(sys.stdin.read() if str(event_path) == "-" else event_path.read_text())
    overrides = json.loads(env_json.read_text()) if env_json else {}
    env = environment(function, overrides, os.environ, region)
    print(f"Invoking {function.handler} ({RUNTIME}, {host_architecture()}) from {function.code_dir}", file=sys.stderr)
    request_id = str(uuid.uuid4())
    print(f"START RequestId: {request_id} Version: {function.version}", file=sys.stderr, flush=True)
    try:
        invocation = invoke(function, event, env, python, request_id)
    except BuildError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    print(f"END RequestId: {invocation.request_id}", file=sys.stderr)
    print("\n".join(report_lines(function, invocation)), file=sys.stderr)
    print(json.dumps(invocation.result if invocation.ok else invocation.error))
    return 0 if invocation.ok else 1
