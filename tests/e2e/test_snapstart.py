"""The local stack restores SnapStart functions' containers from a snapshot, and a restored
container talks to MongoDB only on connections it opened itself, after the snapshot.

MongoDB numbers connections in the order they are opened, so a connection a container inherited
from before the snapshot has a lower id than any opened since. Each process's connections are
found through /proc (its socket inodes, their local ports) and matched to mongod's own view
(``$currentOp``: each connection's client address and id)."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.e2e.running_stack import RunningStack, eventually

pytestmark = pytest.mark.e2e


def mongod_connection_ids(mongodb_uri: str) -> dict[int, int]:
    """Every client connection open on mongod: the client's port -> the connection's id."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri)
    with client:
        operations = client.admin.aggregate([{"$currentOp": {"allUsers": True, "idleConnections": True}}])
        return {
            int(operation["client"].rpartition(":")[2]): int(operation["connectionId"])
            for operation in operations
            if "client" in operation and "connectionId" in operation
        }


def connections_to(pid: int, port: int) -> set[int]:
    """The local ports of process ``pid``'s TCP connections to ``port``."""
    inodes = set()
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(descriptor)
            if target.startswith("socket:["):
                inodes.add(int(target[len("socket:[") : -1]))
    ports = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], int(fields[9])
        if inode in inodes and int(remote.rpartition(":")[2], 16) == port:
            ports.add(int(local.rpartition(":")[2], 16))
    return ports


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])  # after the command's name: state, then ppid


def test_a_restored_container_serves_on_mongodb_connections_opened_after_the_snapshot(stack: RunningStack) -> None:
    if stack.description["mongod"] is None:
        pytest.skip("MONGODB_URI names a MongoDB of your own: its connections are not on this machine's loopback")
    mongodb_uri, mongod_port = stack.description["mongodb_uri"], stack.description["mongod"]["port"]
    snapshot_pid = stack.description["functions"]["InventoryApiFunction"]["snapshot_pid"]
    assert snapshot_pid is not None
    log = (stack.state_dir / "logs" / "InventoryApiFunction.log").read_text()
    assert "before the snapshot" not in log  # the rehearsal connected (indexes ensured), nothing failed
    assert connections_to(snapshot_pid, mongod_port) == set()  # ...and the snapshot kept no connection
    mark = max(mongod_connection_ids(mongodb_uri).values())

    status, _ = stack.call("GET", "/inventory/E2E-SNAPSTART", headers={"X-Correlation-Id": "snapstart-check"})

    assert status == 404
    served_by = eventually(
        "the request's log line",
        lambda: re.search(r"InventoryApiFunction\[(\d+)\].*corr=snapstart-check", stack.log_path.read_text()),
    )
    container = int(served_by.group(1))
    assert parent_of(container) == snapshot_pid  # a fork of the snapshot: restored, not cold
    ports = connections_to(container, mongod_port)
    connection_ids = mongod_connection_ids(mongodb_uri)
    assert ports, "the container served without a MongoDB connection of its own"
    assert all(connection_ids[port] > mark for port in ports), (mark, {port: connection_ids[port] for port in ports})
