"""The built artifact serves every sample event of events/, as Lambda's python3.13 runtime runs it.

Each function of the host build (`make build-host`: template.yaml built for this machine's
architecture) runs through `python -m devstack invoke`, in a python3.13 child with no
site-packages and only the function, its layers, the standard library and what the runtime ships
on sys.path, against this session's mongod, moto in server mode (provisioned from the template)
and localstripe. The samples run in the saga's order, so that each finds what it needs: the
product and the user exist before the order is placed, the notifications service knows the
customer before it confirms the order. A missing module, a file not packaged or a wrong handler
fail the invocation loudly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer
from pymongo import MongoClient

from devstack.artifact import HOST_BUILD_DIR, host_architecture
from devstack.lambda_runtime import RUNTIME_DIR, find_python
from devstack.mongod import free_port
from devstack.provision import aws_client, provision
from devstack.template import ROOT, Template, load_template
from tests.artifacts import require
from tests.conftest import LocalStripe
from tests.support import sample_event

# Each function's sample event in events/ (what `sam local invoke -e` and `devstack invoke -e` take),
# in the order the flow below invokes them.
SAMPLE_EVENTS = {
    "InventoryApiFunction": "api-inventory-put",
    "UsersApiFunction": "api-users-create",
    "OrdersEventsFunction": "sqs-orders-batch",
    "OrdersApiFunction": "api-orders-create",
    "InventoryEventsFunction": "sqs-inventory-batch",
    "PaymentsEventsFunction": "sqs-payments-batch",
    "NotificationsFunction": "sns-notifications",
    "UsersOutboxRelayFunction": "schedule-every-minute",
    "OrdersOutboxRelayFunction": "schedule-every-minute",
    "InventoryOutboxRelayFunction": "schedule-every-minute",
    "PaymentsOutboxRelayFunction": "schedule-every-minute",
    "PaymentsSweepFunction": "schedule-every-minute",
    "OrdersDeadlineFunction": "schedule-every-minute",
}
TEMPLATE = Template(load_template())
ENV_JSON: dict[str, dict[str, str]] = json.loads((ROOT / "env.json").read_text())


@dataclass(frozen=True)
class Served:
    """One `python -m devstack invoke`: its exit status, its answer and what it reported."""

    exit_status: int
    answer: Any  # stdout: the handler's result, or Lambda's error payload
    report: dict[str, float]  # the REPORT line: durations (ms) and memory (MB)
    sys_path: list[str]
    runtime_modules: list[str]  # imported from what the runtime ships
    logs: str

    @property
    def status_code(self) -> int:
        return int(self.answer["statusCode"])


def invoke(function: str, event: dict[str, Any], *options: str) -> Served:
    completed = subprocess.run(
        [sys.executable, "-m", "devstack", "invoke", function, "-e", "-", *options],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        cwd=ROOT,
        # Only what SAM would take from a shell: nothing that the template declares.
        env={"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=120,
        check=False,
    )
    lines = completed.stderr.splitlines()
    report_line = next((line for line in lines if line.startswith("REPORT ")), "")
    path_line = next((line for line in lines if line.startswith("sys.path: ")), "sys.path: ")
    modules_line = next((line for line in lines if line.startswith("from the runtime: ")), "")
    modules = modules_line.removeprefix("from the runtime: ")
    return Served(
        exit_status=completed.returncode,
        answer=json.loads(completed.stdout) if completed.stdout.strip() else None,
        report={name: float(value) for name, value in re.findall(r"([A-Z][\w ]+): ([\d.]+) (?:ms|MB)", report_line)},
        sys_path=path_line.removeprefix("sys.path: ").split(os.pathsep),
        runtime_modules=[] if modules == "nothing" else modules.split(", "),
        logs=completed.stderr,
    )


@dataclass(frozen=True)
class LocalAws:
    endpoint: str
    topic_arn: str
    tap_url: str  # every event published on the topic


@pytest.fixture(scope="module")
def local_aws(mongo_uri: str) -> Iterator[LocalAws]:
    """moto in server mode (the functions run in other processes), with the template's resources."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    provisioned = provision(TEMPLATE, endpoint, mongo_uri, prefix="artifact", fast=False)
    topic_arn = provisioned.topic_arns["ShopEventsTopic"]
    sqs = aws_client("sqs", endpoint)
    tap_url = sqs.create_queue(QueueName="artifact-tap")["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws_client("sns", endpoint).subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=tap_arn, Attributes={"RawMessageDelivery": "true"}
    )
    yield LocalAws(endpoint, topic_arn, tap_url)
    server.stop()


@pytest.fixture(scope="module")
def env_json(
    tmp_path_factory: pytest.TempPathFactory,
    mongo_uri: str,
    mongo_client: MongoClient,
    local_aws: LocalAws,
    localstripe: LocalStripe,
) -> Iterator[Path]:
    """env.json's entries, pointed at this session's services and at databases of this module's own."""
    prefix = f"a{uuid.uuid4().hex[:12]}"
    databases = {spec.name: f"{prefix}_{spec.environment['MONGODB_DATABASE']}" for spec in TEMPLATE.functions()}
    local = {
        function: values
        | {
            "MONGODB_URI": mongo_uri,
            "MONGODB_DATABASE": databases[function],
            "AWS_ENDPOINT_URL": local_aws.endpoint,
            "EVENT_TOPIC_ARN": local_aws.topic_arn,
        }
        | (
            {"STRIPE_API_KEY": localstripe.api_key, "STRIPE_API_BASE": localstripe.url}
            if "STRIPE_API_KEY" in values
            else {}
        )
        for function, values in ENV_JSON.items()
    }
    path = tmp_path_factory.mktemp("artifact") / "env.json"
    path.write_text(json.dumps(local))
    yield path
    for database in set(databases.values()):
        mongo_client.drop_database(database)


def registered_contact_event() -> dict[str, Any]:
    """The notifications service's SNS event for the sample customer's UserRegistered (the first
    record of sqs-orders-batch), so that it knows whom to email when the order is confirmed."""
    event = sample_event("sns-notifications")
    registered = sample_event("sqs-orders-batch")["Records"][0]["body"]
    event["Records"][0]["Sns"]["Message"] = registered
    event["Records"][0]["Sns"]["MessageAttributes"] = {"event_type": {"Type": "String", "Value": "UserRegistered"}}
    return event


@pytest.fixture(scope="module")
def host_build() -> Path:
    require(HOST_BUILD_DIR / "template.yaml", "the host build; `make build-host` builds it")
    require(RUNTIME_DIR / ".installed", "what the python3.13 runtime ships; `make lambda-runtime` installs it")
    return HOST_BUILD_DIR


@pytest.fixture(scope="module")
def served(host_build: Path, env_json: Path) -> dict[str, Served]:
    """Every function of the host build, invoked once with its sample event, in the saga's order."""
    results = {}
    for function, sample in SAMPLE_EVENTS.items():
        if function == "NotificationsFunction":
            contact = invoke(function, registered_contact_event(), "-n", str(env_json))
            assert contact.exit_status == 0, contact.logs
        results[function] = invoke(function, sample_event(sample), "-n", str(env_json))
    return results


def test_every_function_of_the_template_has_a_sample_event() -> None:
    assert sorted(SAMPLE_EVENTS) == sorted(spec.name for spec in TEMPLATE.functions())
    assert sorted(SAMPLE_EVENTS) == sorted(ENV_JSON)


@pytest.mark.parametrize(
    ("function", "status"), [("InventoryApiFunction", 200), ("UsersApiFunction", 201), ("OrdersApiFunction", 201)]
)
def test_an_api_function_answers_its_sample_request(function: str, status: int, served: dict[str, Served]) -> None:
    assert served[function].exit_status == 0, served[function].logs
    assert served[function].status_code == status, served[function].answer


def test_the_orders_consumer_learns_the_user_and_retries_what_names_an_order_it_does_not_have(
    served: dict[str, Served],
) -> None:
    """Its sample's inventory answers are about an order of the sample data, not the one this flow
    placed (its id comes from the caller and the Idempotency-Key): SQS gets them back to retry."""
    records = sample_event("sqs-orders-batch")["Records"]
    assert served["OrdersEventsFunction"].exit_status == 0, served["OrdersEventsFunction"].logs
    assert served["OrdersEventsFunction"].answer == {
        "batchItemFailures": [{"itemIdentifier": record["messageId"]} for record in records[1:]]
    }


@pytest.mark.parametrize("function", ["InventoryEventsFunction", "PaymentsEventsFunction"])
def test_a_consumer_accepts_its_whole_sample_batch(function: str, served: dict[str, Served]) -> None:
    assert served[function].exit_status == 0, served[function].logs
    assert served[function].answer == {"batchItemFailures": []}


def test_notifications_email_the_confirmation(served: dict[str, Served], local_aws: LocalAws) -> None:
    assert served["NotificationsFunction"].exit_status == 0, served["NotificationsFunction"].logs
    assert served["NotificationsFunction"].answer is None
    ses = aws_client("ses", local_aws.endpoint)
    assert ses.get_send_quota()["SentLast24Hours"] == 2  # the welcome, then the confirmation


@pytest.mark.parametrize("function", [name for name in SAMPLE_EVENTS if "OutboxRelay" in name])
def test_a_relay_finds_nothing_left_to_publish(function: str, served: dict[str, Served]) -> None:
    """Every event was published as it was stored: the relays' backlog is empty."""
    assert served[function].exit_status == 0, served[function].logs
    assert served[function].answer == {"published": 0}


def test_the_payments_sweep_and_the_order_deadline_find_nothing_to_do(served: dict[str, Served]) -> None:
    """The payment was charged as its reservation arrived, and no order is anywhere near its deadline."""
    assert served["PaymentsSweepFunction"].answer == {"resumed": 0, "busy": 0, "waiting_on_provider": None}
    assert served["OrdersDeadlineFunction"].answer == {"rejected": []}


def test_the_functions_published_their_events_through_the_local_aws(
    served: dict[str, Served], local_aws: LocalAws
) -> None:
    sqs = aws_client("sqs", local_aws.endpoint)
    published = []
    while batch := sqs.receive_message(QueueUrl=local_aws.tap_url, MaxNumberOfMessages=10).get("Messages", []):
        published += [json.loads(message["Body"])["event_type"] for message in batch]
        sqs.delete_message_batch(
            QueueUrl=local_aws.tap_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    assert {"UserRegistered", "OrderPlaced", "PaymentSucceeded"} <= set(published), published


def test_each_function_ran_isolated_as_in_lambda(served: dict[str, Served]) -> None:
    """sys.path: the function's code, its layers' python folders, the standard library, what the
    runtime ships; no site-packages. The AWS SDK came from the layer, not the runtime's older one."""
    for function, invocation in served.items():
        built = HOST_BUILD_DIR / function
        assert invocation.sys_path[:3] == [
            str(built),
            str(HOST_BUILD_DIR / "SharedLayer" / "python"),
            str(HOST_BUILD_DIR / "DependenciesLayer" / "python"),
        ], function
        assert invocation.sys_path[-1] == str(RUNTIME_DIR), function
        assert not [path for path in invocation.sys_path if "-packages" in path], (function, invocation.sys_path)
        assert not {"boto3", "botocore"} & set(invocation.runtime_modules), (function, invocation.runtime_modules)


def test_the_dependencies_layer_signs_in_to_atlas_with_an_iam_role(host_build: Path) -> None:
    """MONGODB-AWS (Atlas IAM database users) needs pymongo's aws extra: the layer as Lambda places
    it, alone on an isolated python3.13's path, imports it as pymongo does at sign-in."""
    layer = host_build / "DependenciesLayer" / "python"
    probe = (
        f"import sys; sys.path.insert(0, {str(layer)!r}); import pymongo_auth_aws; "
        "from pymongo_auth_aws.auth import set_cached_credentials; print(pymongo_auth_aws.__file__)"
    )
    completed = subprocess.run(
        [find_python(), "-I", "-S", "-c", probe], capture_output=True, text=True, check=False, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().startswith(str(layer))


def test_each_invocation_reports_its_init_restore_duration_and_memory(served: dict[str, Served]) -> None:
    snapstart = {spec.name: spec.snapstart for spec in TEMPLATE.functions()}
    for function, invocation in served.items():
        report = invocation.report
        assert report["Init Duration"] > 0 and report["Duration"] > 0, (function, report)
        # SnapStart (the API functions): the runtime ran the hooks and reports the restore
        assert ("Restore Duration" in report) == snapstart[function], function
        assert 0 < report["Max Memory Used"] < report["Memory Size"], (function, report)


OTHER_ARCHITECTURE = {"x86_64": "arm64", "arm64": "x86_64"}[host_architecture()]


@pytest.mark.parametrize(
    ("break_it", "error"),
    [
        (
            "DependenciesLayer/python/pydantic",
            "Runtime.ImportModuleError: Unable to import module 'users.api': No module named 'pydantic'",
        ),
        (
            "UsersApiFunction/users/domain.py",
            "Runtime.ImportModuleError: Unable to import module 'users.api': No module named 'users.domain'",
        ),
        ("Handler", "Runtime.HandlerNotFound: Handler 'handlr' missing on module 'users.api'"),
        ("Architectures", f"is built for {OTHER_ARCHITECTURE}; this machine runs {host_architecture()}"),
    ],
)
def test_a_broken_artifact_fails_loudly(host_build: Path, tmp_path: Path, break_it: str, error: str) -> None:
    """A module missing from a layer, a file the function's code lacks, a handler that is not
    there, a build for another architecture (the deployed arm64 one, on x86_64)."""
    build = tmp_path / "build"
    shutil.copytree(host_build, build, copy_function=os.symlink)  # every file a link into the host build
    template = build / "template.yaml"
    text = template.read_text()
    template.unlink()
    if break_it == "Handler":
        text = text.replace("Handler: users.api.handler", "Handler: users.api.handlr")
    elif break_it == "Architectures":
        text = text.replace(
            f"Architectures:\n    - {host_architecture()}", f"Architectures:\n    - {OTHER_ARCHITECTURE}"
        )
    elif (build / break_it).is_dir():
        shutil.rmtree(build / break_it)
    else:
        (build / break_it).unlink()
    template.write_text(text)
    failed = invoke("UsersApiFunction", sample_event("api-users-create"), "--build-dir", str(build))
    assert failed.exit_status == 1
    summary = f"{failed.answer['errorType']}: {failed.answer['errorMessage']}" if failed.answer else failed.logs
    assert error in summary, failed.logs
