"""The local Lambda emulation: a function's invocations run on a pool of containers (worker
processes), started on demand up to the function's concurrency, each with its own module
state; a container that crashes or times out is discarded. Containers start cold, or (SnapStart)
are restored: forked from the function's snapshot process, which ran the before-snapshot hooks,
they run the after-restore hooks. Driven with tests/e2e/probe."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.runner import FunctionRunner, Invocation
from devstack.stack import function_concurrency
from devstack.template import FunctionSpec, Resolver
from tests.e2e.probe import probe_spec

pytestmark = pytest.mark.e2e


@pytest.fixture(params=[False, True], ids=["cold", "snapstart"])
def start_runner(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    runners: list[FunctionRunner] = []

    def start(spec: FunctionSpec, concurrency: int) -> FunctionRunner:
        environment = {"PATH": os.environ["PATH"], "AWS_LAMBDA_FUNCTION_NAME": spec.name}
        runner = FunctionRunner(spec, environment, tmp_path / f"{spec.name}.log", concurrency, request.param)
        runners.append(runner)
        runner.warm()
        return runner

    yield start
    for runner in runners:
        runner.stop()


def invoke_at_once(runner: FunctionRunner, events: list[dict[str, Any]]) -> list[Invocation]:
    """Every event invoked by its own thread, all released together."""
    results: list[Invocation | None] = [None] * len(events)
    barrier = threading.Barrier(len(events))

    def invoke(index: int) -> None:
        barrier.wait()
        results[index] = runner.invoke(events[index])

    threads = [threading.Thread(target=invoke, args=(index,)) for index in range(len(events))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(result is not None for result in results)
    return [result for result in results if result is not None]


def most_at_once(answers: list[dict[str, Any]]) -> int:
    """The largest number of invocations that were running at the same moment."""
    moments = sorted([(a["started"], 1) for a in answers] + [(a["ended"], -1) for a in answers])
    running = peak = 0
    for _, change in moments:
        running += change
        peak = max(peak, running)
    return peak


def test_concurrent_invocations_run_in_parallel_on_containers_with_their_own_state(start_runner: Any) -> None:
    runner = start_runner(probe_spec(), concurrency=3)

    invocations = invoke_at_once(runner, [{"sleep": 0.5}] * 6)

    assert all(invocation.ok for invocation in invocations)
    answers = [invocation.result for invocation in invocations]
    pids = {answer["pid"] for answer in answers}
    assert {invocation.container for invocation in invocations} == pids
    assert 1 < len(pids) <= 3
    assert 1 < most_at_once(answers) <= 3
    for pid in pids:  # each container counted only its own invocations
        counts = sorted(answer["invocations"] for answer in answers if answer["pid"] == pid)
        assert counts == list(range(1, len(counts) + 1))


def test_a_concurrency_of_one_serialises_invocations_on_one_container(start_runner: Any) -> None:
    runner = start_runner(probe_spec(), concurrency=1)

    invocations = invoke_at_once(runner, [{"sleep": 0.2}] * 3)

    answers = [invocation.result for invocation in invocations]
    assert len({answer["pid"] for answer in answers}) == 1
    assert most_at_once(answers) == 1


@pytest.mark.parametrize(
    ("reserved", "parameter", "expected"),
    [
        (None, "0", 4),
        (2, "0", 2),
        (9, "0", 4),
        ({"Fn::If": ["Reserve", {"Ref": "Reserved"}, {"Ref": "AWS::NoValue"}]}, "0", 4),
        ({"Fn::If": ["Reserve", {"Ref": "Reserved"}, {"Ref": "AWS::NoValue"}]}, "3", 3),
    ],
)
def test_reserved_concurrency_of_the_template_caps_the_stacks_concurrency(
    reserved: Any, parameter: str, expected: int
) -> None:
    conditions = {"Reserve": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Reserved"}, "0"]}]}}
    resolver = Resolver({"Reserved": parameter}, conditions)

    assert function_concurrency(probe_spec(reserved_concurrency=reserved), resolver, limit=4) == expected


def test_a_container_that_times_out_is_discarded(start_runner: Any) -> None:
    runner = start_runner(probe_spec(timeout=1), concurrency=2)
    first = runner.invoke({})

    timed_out = runner.invoke({"sleep": 5})
    after = runner.invoke({})

    assert first.ok and after.ok
    assert not timed_out.ok and timed_out.timed_out
    assert timed_out.container == first.container
    assert after.result["pid"] != first.result["pid"]
    assert after.result["invocations"] == 1  # a new container, a fresh module
    assert not Path(f"/proc/{first.container}").exists()


def test_a_container_that_crashes_is_discarded(start_runner: Any) -> None:
    runner = start_runner(probe_spec(), concurrency=2)
    first = runner.invoke({})

    crashed = runner.invoke({"crash": True})
    after = runner.invoke({})

    assert not crashed.ok and not crashed.timed_out
    assert "exit" in str(crashed.error)
    assert after.ok and after.result["pid"] != first.result["pid"]


def test_a_failing_invocation_keeps_its_container(start_runner: Any) -> None:
    runner = start_runner(probe_spec(), concurrency=2)
    first = runner.invoke({})

    failed = runner.invoke({"fail": True})
    after = runner.invoke({})

    assert not failed.ok and "failing on request" in str(failed.error)
    assert after.result["pid"] == first.result["pid"]
    assert after.result["invocations"] == 3


def test_a_restored_container_ran_the_hooks_a_cold_one_none(start_runner: Any) -> None:
    runner = start_runner(probe_spec(), concurrency=1)
    runner.invoke({"crash": True})  # so that the next invocation starts a container

    started = runner.invoke({})

    answer = started.result
    if runner.snapstart:  # before the snapshot in the snapshot process, after the restore in the container
        assert answer["hooks_ran_in"] == {"before_snapshot": runner.snapshot_pid, "after_restore": answer["pid"]}
        assert answer["pid"] != runner.snapshot_pid
        assert started.restore_ms is not None and started.init_ms is None
        assert f"Probe[{answer['pid']}] (restored " in runner.served_by(started)
    else:
        assert answer["hooks_ran_in"] == {"before_snapshot": None, "after_restore": None}
        assert runner.snapshot_pid is None
        assert started.init_ms is not None and started.restore_ms is None
        assert f"Probe[{answer['pid']}] (cold start " in runner.served_by(started)
