"""SnapStart hooks (shop_common/snapstart.py) without I/O: what the after-restore hook lets go of
and rebuilds, what the before-snapshot hook warms, and that every function registers them.

The local stack restores containers with fork, and pymongo and `random` have at-fork handlers of
their own, so a stack that works proves less than it seems: these tests call the hooks directly,
as a Firecracker restore (which runs no at-fork handler) leaves the hooks alone to do it."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from unittest import mock

import pytest
from pymongo import MongoClient
from pymongo.errors import InvalidOperation

from devstack.template import Template, load_template
from shop_common import aws, container, mongo, secrets, snapstart


@pytest.fixture(autouse=True)
def fresh_container() -> Iterator[None]:
    container.release_all()
    yield
    container.release_all()


def test_after_the_restore_each_container_draws_its_own_random_numbers() -> None:
    random.seed(2026)  # as seeded before the snapshot: every restored container starts from this state
    snapshot_state = random.getstate()
    without_the_hook = [random.random()]
    random.setstate(snapshot_state)
    without_the_hook.append(random.random())

    draws = []
    for _ in range(2):  # two containers restored from the same snapshot
        random.setstate(snapshot_state)
        snapstart.after_restore()
        draws.append(random.random())

    assert without_the_hook[0] == without_the_hook[1]  # what the hook is for
    assert draws[0] != draws[1]


def test_after_the_restore_the_cached_secrets_are_gone_and_the_client_closed() -> None:
    provider = secrets.secrets_provider()
    provider.add_to_cache(key=("mongodb-uri", None), value="mongodb://before-the-snapshot", max_age=300)
    client = provider.client

    with mock.patch.object(client, "close", wraps=client.close) as close:
        snapstart.after_restore()

    close.assert_called_once()
    restored = secrets.secrets_provider()
    assert restored is not provider
    assert restored.client is not client
    assert not restored.has_not_expired_in_cache(("mongodb-uri", None))


def test_after_the_restore_a_new_mongodb_client_is_built_and_the_old_one_is_closed() -> None:
    with mock.patch.object(mongo, "MongoClient", partial(MongoClient, connect=False)):  # no I/O
        before = mongo.client_for("mongodb://127.0.0.1:1", "orders")
        assert mongo.client_for("mongodb://127.0.0.1:1", "orders") is before  # one per container

        snapstart.after_restore()
        after = mongo.client_for("mongodb://127.0.0.1:1", "orders")

    assert after is not before
    with pytest.raises(InvalidOperation, match="after close"):
        before.admin.command("ping")
    after.close()


def test_after_the_restore_aws_clients_are_rebuilt_on_the_models_kept_warm() -> None:
    models = aws.botocore_models()  # read from botocore's files, no connection: kept through the snapshot
    before = aws.create_client("sns", "http://127.0.0.1:1", aws.REPEATABLE)

    with mock.patch.object(before, "close", wraps=before.close) as close:
        snapstart.after_restore()

    close.assert_called_once()  # its connection pool: sockets that would not survive a restore
    assert aws.create_client("sns", "http://127.0.0.1:1", aws.REPEATABLE) is not before
    assert aws.botocore_session().get_component("data_loader") is models


class Signed(Exception):
    """Raised by the before-send hook: the request was signed, and is never sent."""


def signing_access_key(client: Any) -> str:
    """The access key ``client`` signs its next request with (no I/O: stopped before sending)."""

    def stop(request: Any, **_: Any) -> None:
        raise Signed(request.headers["Authorization"].decode())

    client.meta.events.register("before-send", stop)
    with pytest.raises(Signed) as signed:
        client.list_topics()
    credential = str(signed.value).partition("Credential=")[2]  # AKID/date/region/service/aws4_request
    return credential.partition("/")[0]


def test_after_the_restore_aws_clients_sign_with_the_containers_own_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before the snapshot (a published version's INIT), the warm-up builds its AWS clients.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSNAPSHOTINIT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "snapshot-secret")
    before = aws.create_client("sns", "http://127.0.0.1:1", aws.REPEATABLE)
    assert signing_access_key(before) == "AKIDSNAPSHOTINIT"
    container.release_all()  # the before-snapshot hook lets go of the clients

    # A restored container has credentials of its own (in AWS: the container credentials provider).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDRESTOREDCONTAINER")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "restored-secret")
    snapstart.after_restore()

    after = aws.create_client("sns", "http://127.0.0.1:1", aws.REPEATABLE)
    assert signing_access_key(after) == "AKIDRESTOREDCONTAINER"


@dataclass
class RecordingDependencies:
    warmed: list[str] = field(default_factory=list)

    def warm_up(self) -> None:
        self.warmed.append("warm_up")


def test_before_the_snapshot_the_dependencies_are_built_warmed_and_let_go() -> None:
    built: list[RecordingDependencies] = []

    @container.per_container
    def dependencies() -> RecordingDependencies:
        built.append(RecordingDependencies())
        return built[-1]

    snapstart.before_snapshot(dependencies, ["json.tool"])

    assert len(built) == 1 and built[0].warmed == ["warm_up"]
    assert "json.tool" in sys.modules
    assert dependencies() is not built[0]  # let go: the snapshot keeps none of it


def test_a_dependency_that_cannot_be_built_before_the_snapshot_does_not_stop_the_snapshot() -> None:
    def unreachable() -> RecordingDependencies:
        raise ConnectionError("MongoDB blinked during the deployment")

    snapstart.before_snapshot(unreachable)  # logged; the first invocation builds them


# Imports each handler module in turn and records the hooks its import registered.
REGISTERED_BY_IMPORT = """
import importlib, json, sys
from snapshot_restore_py import get_after_restore, get_before_snapshot
from shop_common import snapstart

registered = {}
for module_name in sys.argv[1:]:
    before, after = len(get_before_snapshot()), len(get_after_restore())
    importlib.import_module(module_name)
    dependencies = importlib.import_module(module_name.partition(".")[0] + ".dependencies").dependencies
    registered[module_name] = {
        "before_snapshot": [
            [hook is snapstart.before_snapshot, args[0] is dependencies, list(args[1])]
            for hook, args, _ in get_before_snapshot()[before:]
        ],
        "after_restore": [hook is snapstart.after_restore for hook, _, _ in get_after_restore()[after:]],
    }
print(json.dumps(registered))
"""
API_FUNCTIONS = {"UsersApiFunction", "OrdersApiFunction", "InventoryApiFunction"}  # SnapStart: a person waits
# Modules a function's paths import on demand, imported before the snapshot instead.
IMPORTED_BEFORE_THE_SNAPSHOT = {
    "orders.api": ["orders.idempotency"],
    "payments.consumer": ["payments.provider"],
    "payments.sweep": ["payments.provider"],
}


def test_every_function_registers_the_hooks_with_its_services_dependencies() -> None:
    functions = Template(load_template()).functions()
    modules = sorted({function.handler.rpartition(".")[0] for function in functions})
    completed = subprocess.run(  # a fresh interpreter: each import registers anew
        [sys.executable, "-c", REGISTERED_BY_IMPORT, *modules],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    registered = json.loads(completed.stdout)

    # Registered by every function, SnapStart or not: without it the hooks never run (devstack
    # restores only the functions with SnapStart), and registering them is all it costs.
    assert {function.name for function in functions if function.snapstart} == API_FUNCTIONS
    for module in modules:
        imports = IMPORTED_BEFORE_THE_SNAPSHOT.get(module, [])
        assert registered[module] == {"before_snapshot": [[True, True, imports]], "after_restore": [True]}, module
