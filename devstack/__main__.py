"""`python -m devstack up|demo|dlq|doctor|invoke|sizes ...`: the local stack and its tools."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devstack.artifact import BUILD_DIR, HOST_BUILD_DIR
from devstack.runner import DEFAULT_CONCURRENCY
from devstack.template import REGION, ROOT

DEFAULT_STATE = ROOT / ".local"


def up(args: argparse.Namespace) -> int:
    from devstack import console
    from devstack.stack import LocalStack, StackOptions

    options = StackOptions(
        state_dir=args.state_dir,
        port=args.port,
        fast=args.fast,
        fresh=args.fresh,
        concurrency=args.concurrency,
        snapstart=args.snapstart,
    )
    stack = LocalStack(options)
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        description = stack.start()
        console.line(
            "STACK",
            f"up in {description['startup_seconds']} s: API {description['api_url']}, "
            f"AWS {description['aws_endpoint_url']}, MongoDB {description['mongodb_uri']}",
        )
        console.line(
            "STACK",
            f"{len(description['functions'])} functions; details in {args.state_dir / 'stack.json'}; Ctrl-C stops",
        )
        # A signal may reach any thread; the main thread runs its handler only once awake, so
        # it wakes every second instead of blocking for good.
        while not stopped.wait(timeout=1):
            pass
    finally:
        stack.stop()
    return 0


def read_stack(state_dir: Path) -> dict[str, object]:
    path = state_dir / "stack.json"
    if not path.exists():
        sys.exit(f"No local stack description at {path}: start one with `make dev`.")
    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help="where data, logs and stack.json live")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="run the whole system locally")
    start.add_argument("--port", type=int, default=3000)
    start.add_argument("--fresh", action="store_true", help="delete the local data first")
    start.add_argument("--fast", action="store_true", help="seconds instead of minutes for retries and redrives")
    start.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="containers (worker processes) per function at most; ReservedConcurrentExecutions caps it further",
    )
    start.add_argument(
        "--no-snapstart",
        dest="snapstart",
        action="store_false",
        help="cold-start every container instead of restoring those of SnapStart functions from a snapshot",
    )
    commands.add_parser("demo", help="walk the running stack through the whole saga")
    token = commands.add_parser("token", help="print an ID token of the local user pool for EMAIL (for curl)")
    token.add_argument("email")
    token.add_argument("--staff", action="store_true", help="make the user a member of the staff group")
    dlq = commands.add_parser("dlq", help="list or redrive dead-letter queues")
    dlq.add_argument("action", choices=["list", "redrive"])
    dlq.add_argument("--queue", help="only this dead-letter queue (logical id, or URL with --aws)")
    dlq.add_argument("--aws", action="store_true", help="work on the deployed stack (CloudFormation outputs)")
    dlq.add_argument("--stack-name", default="shop-dev")
    doctor = commands.add_parser("doctor", help="check a stack is ready to serve; one line per finding, how to fix it")
    doctor.add_argument(
        "--aws", action="store_true", help="check the deployed stack (CloudFormation), not the local one"
    )
    doctor.add_argument("--stack-name", default="shop-dev")
    doctor.add_argument("--region", help="the deployed stack's region; default: your AWS configuration's")
    doctor.add_argument(
        "--no-connect",
        dest="connect",
        action="store_false",
        help="parse the connection strings, do not reach the clusters",
    )
    invoke = commands.add_parser(
        "invoke", help="run one function of the built artifact once, as Lambda's python3.13 runtime (no Docker)"
    )
    invoke.add_argument("function", help="its logical id in template.yaml")
    invoke.add_argument("-e", "--event", type=Path, help="the event, a JSON file ('-': stdin); default {}")
    invoke.add_argument("-n", "--env-vars", type=Path, help="env.json, applied as sam local applies it")
    invoke.add_argument("--build-dir", type=Path, default=HOST_BUILD_DIR, help="default: the build for this machine")
    invoke.add_argument("--region", default=REGION)
    sizes = commands.add_parser("sizes", help="each function's code and layers, unzipped and zipped, against 250 MB")
    sizes.add_argument("--build-dir", type=Path, default=BUILD_DIR, help="default: the arm64 artifact that deploys")
    args = parser.parse_args(argv)
    if args.command == "invoke":
        from devstack.lambda_runtime import run

        return run(args.function, args.event, args.env_vars, args.build_dir, args.region)
    if args.command == "sizes":
        from devstack.artifact import print_sizes

        return print_sizes(args.build_dir)
    if args.command == "up":
        return up(args)
    if args.command == "demo":
        from devstack.demo import run_demo

        try:
            return run_demo(read_stack(args.state_dir))
        except TimeoutError as error:
            sys.exit(f"Demo stopped: {error}")
    if args.command == "token":
        from devstack.demo import sign_in

        print(sign_in(read_stack(args.state_dir), args.email, args.staff))
        return 0
    if args.command == "doctor":
        from devstack.doctor import aws_view, local_view, run_doctor

        view = aws_view(args.stack_name, args.region) if args.aws else local_view(read_stack(args.state_dir))
        return run_doctor(view, connect=args.connect)
    from devstack.dlq import run_dlq

    return run_dlq(args, None if args.aws else read_stack(args.state_dir))


if __name__ == "__main__":
    sys.exit(main())
