"""SnapStart runtime hooks, one mechanism for every function (template.yaml turns SnapStart on for
the published versions of the API functions, where a person waits for a cold start; every
function registers the hooks, which run only with SnapStart).

Lambda initialises a published version once: it imports the handler module, runs the
before-snapshot hooks and snapshots the microVM. A new container starts from that snapshot: it
runs the after-restore hooks (which, with loading the runtime, must end within 10 s) and then its
first invocation. The hooks are registered with ``snapshot_restore_py``, which python3.12 and
later managed runtimes include; the local stack runs them the same way (devstack/worker.py). Each
handler module calls ``prepare`` once, at import; without SnapStart (an ordinary cold start, the
tests) the hooks never run, and registering them is all it costs.

Before the snapshot, what a first invocation would otherwise pay for is paid once per published
version: the modules its paths import on demand (kept lazy for ordinary cold starts), and the
function's dependencies built for real: settings, the connection string (a secret), the MongoDB
connection with the indexes ensured (once per version instead of once per container), the AWS
clients it uses (botocore imported, their models loaded once per process, shop_common.aws).
pydantic builds its validators when the models are defined, at import: a first validation costs
0.2 ms, nothing worth a rehearsal. Then everything per container is let go
(shop_common.container): the snapshot holds no connection, no secret and no credentials.

After the restore, it is let go again, so that nothing built before the snapshot is trusted (the
botocore session included: the next client resolves the restored container's own credentials), and
``random`` is reseeded: every container restored from one snapshot would otherwise draw the same
numbers (botocore's retry jitter, Powertools' log sampling). Everything else unique is made after
the restore, from os.urandom, at each use (uuid4: event ids, payment lease holders; the server
session ids of the MongoDB client built after the restore), and the driver generates no ObjectId
(bson seeds those once per process): every document carries an _id of ours.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Iterable
from typing import Protocol

from aws_lambda_powertools import Logger

from shop_common.container import release_all

logger = Logger(child=True)


class WarmsUp(Protocol):
    def warm_up(self) -> None:
        """Build now what the first invocation would build on first use (AWS clients)."""


def prepare(dependencies: Callable[[], WarmsUp], imports: Iterable[str] = ()) -> None:
    """Register the function's SnapStart hooks: before the snapshot, import ``imports`` (modules
    the function's paths import on demand) and build and warm up ``dependencies()``."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ModuleNotFoundError:  # not a runtime that snapshots (python3.11; the bare artifact): no hook would run
        return
    register_before_snapshot(before_snapshot, dependencies, tuple(imports))
    register_after_restore(after_restore)


def before_snapshot(dependencies: Callable[[], WarmsUp], imports: Iterable[str] = ()) -> None:
    for module in imports:
        importlib.import_module(module)
    try:
        dependencies().warm_up()
    except Exception:
        # Not fatal: a deployment should not fail because MongoDB or a secret blinked. A restored
        # container then builds them at its first invocation, as an ordinary cold start does.
        logger.exception("Could not build the dependencies before the snapshot; the first invocation will")
    release_all()


def after_restore() -> None:
    release_all()
    random.seed()  # a new seed from os.urandom, drawn in this container
