"""The whole system on one machine: MongoDB, a local AWS (moto), every function of
template.yaml, its HTTP API and its event delivery. `python -m devstack up`."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from moto.server import ThreadedMotoServer

from devstack import console
from devstack.api import Route, make_server, route
from devstack.authorizer import CognitoAuthorizer
from devstack.delivery import Scheduler, schedule_seconds, sns_invokers, sqs_pollers
from devstack.mongod import MongoServer, free_port
from devstack.provision import Provisioned, provision
from devstack.runner import DEFAULT_CONCURRENCY, RESTORES_SUPPORTED, FunctionRunner
from devstack.stripe_server import API_KEY as STRIPE_API_KEY
from devstack.stripe_server import StripeServer
from devstack.template import REGION, FunctionSpec, Resolver, Template, load_template

# Lambda retries an asynchronous invocation after about 1 and 2 minutes; --fast shrinks
# those, queue visibility timeouts and schedules so a redrive can be watched in seconds.
RETRY_DELAYS = [60, 120]
FAST_RETRY_DELAYS = [1, 2]
FAST_SCHEDULE_SECONDS = 5
# --fast also shortens the order deadline (OrderDeadlineMinutes) to 30 seconds.
FAST_ENVIRONMENT = {"ORDER_DEADLINE_MINUTES": "0.5"}
# The ports env.json gives `sam local` (with --docker-network host), when they are free.
MOTO_PORT = 5000
MONGODB_PORT = 27017
STRIPE_PORT = 8420  # localstripe's own default


def preferred_port(port: int) -> int:
    with socket.socket() as probe:
        return port if probe.connect_ex(("127.0.0.1", port)) != 0 else free_port()


def payment_provider(localstripe_url: str) -> dict[str, str]:
    """The stack's localstripe, unless the caller names a provider of their own with
    ``STRIPE_API_BASE`` (and ``STRIPE_API_KEY``), as MONGODB_URI names a MongoDB: a proxy in front
    of a localstripe that a fault test switches off, say."""
    if os.environ.get("STRIPE_API_BASE"):
        return {
            "STRIPE_API_BASE": os.environ["STRIPE_API_BASE"],
            "STRIPE_API_KEY": os.environ.get("STRIPE_API_KEY") or STRIPE_API_KEY,
        }
    return {"STRIPE_API_BASE": localstripe_url, "STRIPE_API_KEY": STRIPE_API_KEY}


def function_concurrency(spec: FunctionSpec, resolver: Resolver, limit: int) -> int:
    """The stack's limit per function, or the function's reserved concurrency if that is lower."""
    reserved = resolver.resolve(spec.reserved_concurrency)
    return limit if reserved is None else min(limit, int(reserved))


def _authorizer(provisioned: Provisioned, endpoint: str, pool_arn: str) -> CognitoAuthorizer:
    pool_id = next(pool["id"] for pool in provisioned.user_pools.values() if pool["arn"] == pool_arn)
    clients = {client["id"] for client in provisioned.user_pool_clients.values() if client["user_pool_id"] == pool_id}
    return CognitoAuthorizer.of_pool(endpoint, pool_id, clients)


@dataclass
class StackOptions:
    state_dir: Path
    port: int = 3000
    fast: bool = False
    fresh: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    snapstart: bool = True  # restore the containers of SnapStart functions from a snapshot, as Lambda does


@dataclass
class LocalStack:
    options: StackOptions
    stopping: threading.Event = field(default_factory=threading.Event)
    mongo: MongoServer | None = None
    moto: ThreadedMotoServer | None = None
    runners: dict[str, FunctionRunner] = field(default_factory=dict)
    threads: list[threading.Thread] = field(default_factory=list)
    http: ThreadingHTTPServer | None = None
    stripe: StripeServer | None = None

    def start(self) -> dict[str, Any]:
        started = time.perf_counter()
        state = self.options.state_dir
        if self.options.fresh and state.exists():
            shutil.rmtree(state)
        (state / "logs").mkdir(parents=True, exist_ok=True)
        mongodb_uri = self._start_mongo(state)
        self.stripe = StripeServer(preferred_port(STRIPE_PORT))
        stripe_url = self.stripe.start(state / "logs" / "stripe.log")
        moto_port = preferred_port(MOTO_PORT)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        self.moto.start()
        endpoint = f"http://127.0.0.1:{moto_port}"
        template = Template(load_template())
        provisioned = provision(template, endpoint, mongodb_uri, prefix="shop-local", fast=self.options.fast)
        self._start_functions(template, provisioned, endpoint, stripe_url, state)
        routes = self._start_delivery(template, provisioned, endpoint)
        stage = provisioned.resolver.ref("Stage") if "Stage" in provisioned.resolver.parameters else "local"
        self.http = make_server("127.0.0.1", self.options.port, routes, stage)
        threading.Thread(target=self.http.serve_forever, name="api", daemon=True).start()
        description = self._describe(provisioned, endpoint, mongodb_uri, round(time.perf_counter() - started, 2))
        (state / "stack.json").write_text(json.dumps(description, indent=2))
        return description

    def _start_mongo(self, state: Path) -> str:
        if os.environ.get("MONGODB_URI"):  # your own MongoDB or Atlas
            return os.environ["MONGODB_URI"]
        port_file = state / "mongod.port"
        # The replica set remembers its member's host:port, so a kept data dir keeps its port.
        port = int(port_file.read_text()) if port_file.exists() else preferred_port(MONGODB_PORT)
        port_file.write_text(str(port))
        self.mongo = MongoServer(state / "mongo", port=port)
        return self.mongo.start()

    def _start_functions(
        self, template: Template, provisioned: Provisioned, endpoint: str, stripe_url: str, state: Path
    ) -> None:
        base = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "TZ", "TMPDIR")}
        for spec in template.functions():
            variables = {key: str(value) for key, value in provisioned.resolver.resolve(spec.environment).items()}
            if self.options.fast:
                variables |= {key: value for key, value in FAST_ENVIRONMENT.items() if key in variables}
            if "STRIPE_API_BASE" in variables:  # the payment provider
                variables |= payment_provider(stripe_url)
            environment = {
                **base,
                **variables,
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "PYTHONUNBUFFERED": "1",
            }
            log_path = state / "logs" / f"{spec.name}.log"
            concurrency = function_concurrency(spec, provisioned.resolver, self.options.concurrency)
            snapstart = self.options.snapstart and spec.snapstart and RESTORES_SUPPORTED  # else cold starts
            self.runners[spec.name] = FunctionRunner(spec, environment, log_path, concurrency, snapstart)
        with ThreadPoolExecutor(max_workers=len(self.runners)) as pool:
            list(pool.map(FunctionRunner.warm, self.runners.values()))

    def _start_delivery(self, template: Template, provisioned: Provisioned, endpoint: str) -> list[Route]:
        routes: list[Route] = []
        authorizers: dict[str, CognitoAuthorizer] = {}  # by user pool ARN
        for spec in template.functions():
            runner = self.runners[spec.name]
            for trigger in spec.triggers:
                props = trigger.properties
                if trigger.kind == "Api":
                    config = template.authorizer_of(trigger)
                    pool_arn = provisioned.resolver.resolve(config["UserPoolArn"]) if config else None
                    if pool_arn and pool_arn not in authorizers:
                        authorizers[pool_arn] = _authorizer(provisioned, endpoint, pool_arn)
                    routes.append(route(props["Method"], props["Path"], runner, authorizers.get(pool_arn or "")))
                elif trigger.kind == "SQS":
                    queue_arn = provisioned.resolver.resolve(props["Queue"])
                    queue = next(info for info in provisioned.queues.values() if info["arn"] == queue_arn)
                    batch_size, scaling = int(props.get("BatchSize", 10)), props.get("ScalingConfig", {})
                    maximum = scaling.get("MaximumConcurrency")
                    self.threads += sqs_pollers(
                        queue, runner, batch_size, self.stopping, int(maximum) if maximum else None
                    )
                elif trigger.kind == "SNS":
                    dead_letter = (
                        provisioned.resolver.resolve(spec.dead_letter_target) if spec.dead_letter_target else None
                    )
                    dead_letter_url = next(
                        (info["url"] for info in provisioned.queues.values() if info["arn"] == dead_letter), None
                    )
                    delays = (FAST_RETRY_DELAYS if self.options.fast else RETRY_DELAYS)[: spec.max_retry_attempts]
                    deliveries = provisioned.sns_delivery_queues[spec.name]
                    self.threads += sns_invokers(deliveries, runner, delays, dead_letter_url, self.stopping)
                elif trigger.kind == "Schedule":
                    every = FAST_SCHEDULE_SECONDS if self.options.fast else schedule_seconds(props["Schedule"])
                    self.threads.append(Scheduler(runner, every, self.stopping))
        for thread in self.threads:
            thread.start()
        return routes

    def _describe(self, provisioned: Provisioned, endpoint: str, mongodb_uri: str, seconds: float) -> dict[str, Any]:
        dead_letter_ids = set(provisioned.dead_letter_queues.values())
        return {
            "api_url": f"http://127.0.0.1:{self.options.port}",
            "aws_endpoint_url": endpoint,
            "stripe_api_base": payment_provider(self.stripe.url)["STRIPE_API_BASE"] if self.stripe else None,
            "region": REGION,
            "mongodb_uri": mongodb_uri,
            "mongod": self._mongod(),
            "topics": provisioned.topic_arns,
            "queues": provisioned.queues,
            "redrive": provisioned.dead_letter_queues,
            "dead_letter_queues": {
                name: info
                for name, info in provisioned.queues.items()
                if name in dead_letter_ids or "DeadLetter" in name
            },
            "sns_deliveries": provisioned.sns_delivery_queues,
            "secrets": provisioned.secrets,
            # the first pool and app client, for clients to sign up and in (Cognito's own API)
            "user_pool_id": next((pool["id"] for pool in provisioned.user_pools.values()), None),
            "user_pool_client_id": next((client["id"] for client in provisioned.user_pool_clients.values()), None),
            "sender_identities": provisioned.sender_identities,
            "functions": {
                name: {
                    "handler": r.spec.handler,
                    "init_ms": r.init_ms,
                    "concurrency": r.concurrency,
                    "snapshot_pid": r.snapshot_pid,  # with SnapStart: the process its containers are forked from
                }
                for name, r in self.runners.items()
            },
            "concurrency": self.options.concurrency,
            "fast": self.options.fast,
            "pid": os.getpid(),
            "startup_seconds": seconds,
        }

    def _mongod(self) -> dict[str, Any] | None:
        """The mongod this stack runs (None with MONGODB_URI): to kill it in a fault test, say."""
        if self.mongo is None or self.mongo.process is None:
            return None
        return {"pid": self.mongo.process.pid, "port": self.mongo.port, "data_dir": str(self.mongo.data_dir)}

    def stop(self) -> None:
        self.stopping.set()
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
        for thread in self.threads:
            thread.join(timeout=5)
        for runner in self.runners.values():
            runner.stop()
        if self.moto is not None:
            self.moto.stop()
        if self.stripe is not None:
            self.stripe.stop()
        if self.mongo is not None:
            self.mongo.stop()
        console.line("STACK", "stopped")
