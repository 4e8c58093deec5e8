"""SnapStart per function: whether it pays, and what each function costs a month with and without it
at 1, 10 and 100 orders a minute. `python -m bench.snapstart_cost` prints the table (README).

SnapStart never pays in dollars here: a restore is charged per GB (0.5 GB: $0.00007), about 40
times the INIT it replaces (~240 ms at 0.5 GB: $0.0000016), and each active version's snapshot
is cached per GB-second ($1.95 a month at 0.5 GB), with or without traffic. What it buys is
latency: a container's first request after a restore instead of after a cold start
(docs/BENCHMARKS.md). So it is on where a person waits for that first request, the functions API
Gateway invokes, and off where nobody does: the consumers (SQS, SNS), relays, sweep and deadline
(schedules), whose cold start only delays a message or a run that nobody watches.

The model: a month of 30 days; COLD_START_SHARE of the invocations start a new container (as in
bench/cost.py), each a restore with SnapStart or an INIT without; one active version per function
(a deploy leaves the old version's snapshot cached until Lambda deactivates it after 14 days
without invocations: delete old versions). Prices: bench/cost.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.cost import (
    COLD_START_SHARE,
    LAMBDA_ARM_GB_SECOND,
    PRICES_DATE,
    SNAPSTART_CACHE_GB_SECOND,
    SNAPSTART_RESTORE_GB,
)
from devstack.template import FunctionSpec, Template

MINUTES_PER_MONTH = 30 * 24 * 60
SECONDS_PER_MONTH = MINUTES_PER_MONTH * 60
ORDERS_PER_MINUTE = (1, 10, 100)
# docs/BENCHMARKS.md, the largest of each: a cold start's INIT (the built artifact's import, with
# bytecode), a cold start to the first answer (import and first call), the first answer after a
# restore (its after-restore hooks bill 0.1 ms, so 1 ms once rounded up).
INIT_MS = 240
COLD_START_TO_ANSWER_MS = 380
RESTORED_TO_ANSWER_MS = 41
AFTER_RESTORE_HOOKS_BILLED_MS = 1

# Invocations per order of the functions that events invoke (a schedule's are counted from its
# rate): the saga's (bench/cost.py) and what a client reads around an order.
INVOCATIONS_PER_ORDER = {
    "UsersApiFunction": 1.0,  # the customer's profile, read once per order
    "OrdersApiFunction": 2.0,  # POST /orders, then GET /orders/{id} for its outcome
    "InventoryApiFunction": 1.0,  # GET /inventory/{sku} before ordering
    "OrdersEventsFunction": 2.0,  # InventoryReserved (the total), PaymentSucceeded (confirm)
    "InventoryEventsFunction": 1.0,  # OrderPlaced
    "PaymentsEventsFunction": 2.0,  # OrderPlaced, InventoryReserved (the charge)
    "NotificationsFunction": 1.0,  # OrderConfirmed
}
SCHEDULE_RATE = re.compile(r"rate\((\d+) minutes?\)")


@dataclass(frozen=True)
class FunctionCost:
    function: str
    snapstart: bool  # as template.yaml sets it
    pays: bool  # whether the model says it should be on
    why: str
    with_snapstart: tuple[float, ...]  # dollars a month, one per ORDERS_PER_MINUTE
    without_snapstart: tuple[float, ...]

    @property
    def monthly(self) -> tuple[float, ...]:
        """Dollars a month as the template sets it."""
        return self.with_snapstart if self.snapstart else self.without_snapstart


def a_person_waits(function: FunctionSpec) -> bool:
    """Whether someone waits for the function's answer: API Gateway invokes it for a client."""
    return any(trigger.kind == "Api" for trigger in function.triggers)


def invocations_per_month(function: FunctionSpec, orders_per_minute: float) -> float:
    scheduled = [trigger for trigger in function.triggers if trigger.kind == "Schedule"]
    if scheduled:
        return sum(MINUTES_PER_MONTH / _every_minutes(trigger.properties["Schedule"]) for trigger in scheduled)
    return INVOCATIONS_PER_ORDER[function.name] * orders_per_minute * MINUTES_PER_MONTH


def cost_with_snapstart(invocations: float, memory_gb: float) -> float:
    """The active version's snapshot cached all month, and a restore per cold start (its charge
    per GB and its billed after-restore hooks)."""
    cache = memory_gb * SECONDS_PER_MONTH * SNAPSTART_CACHE_GB_SECOND
    restores = invocations * COLD_START_SHARE
    hooks = AFTER_RESTORE_HOOKS_BILLED_MS / 1000 * memory_gb * LAMBDA_ARM_GB_SECOND
    return cache + restores * (memory_gb * SNAPSTART_RESTORE_GB + hooks)


def cost_without_snapstart(invocations: float, memory_gb: float) -> float:
    """The INIT billed on each cold start (billed since August 2025)."""
    return invocations * COLD_START_SHARE * INIT_MS / 1000 * memory_gb * LAMBDA_ARM_GB_SECOND


def function_costs(template: Template) -> list[FunctionCost]:
    rows = []
    for function in sorted(template.functions(), key=lambda f: f.name):
        props = template.resources[function.name]["Properties"]
        memory_gb = int(props.get("MemorySize", template.globals.get("MemorySize", 128))) / 1024
        invocations = [invocations_per_month(function, rate) for rate in ORDERS_PER_MINUTE]
        pays = a_person_waits(function)
        why = (
            f"a person waits: first answer in ~{RESTORED_TO_ANSWER_MS} ms, not ~{COLD_START_TO_ANSWER_MS} ms cold"
            if pays
            else f"nobody waits ({_invoker(function)}): a cold start delays no one; snapshots would cost more"
        )
        rows.append(
            FunctionCost(
                function=function.name,
                snapstart=function.snapstart,
                pays=pays,
                why=why,
                with_snapstart=tuple(cost_with_snapstart(n, memory_gb) for n in invocations),
                without_snapstart=tuple(cost_without_snapstart(n, memory_gb) for n in invocations),
            )
        )
    return rows


def markdown_table(rows: list[FunctionCost]) -> str:
    rates = " | ".join(f"$/month at {rate}/min" for rate in ORDERS_PER_MINUTE)
    lines = [
        f"| function | SnapStart | why | {rates} | with SnapStart at 100/min | without at 100/min |",
        "|---|---|---|" + "---|" * len(ORDERS_PER_MINUTE) + "---|---|",
    ]
    for row in rows:
        monthly = " | ".join(f"{dollars:.2f}" for dollars in row.monthly)
        lines.append(
            f"| {row.function} | {'yes' if row.snapstart else 'no'} | {row.why} | {monthly} "
            f"| {row.with_snapstart[-1]:.2f} | {row.without_snapstart[-1]:.2f} |"
        )
    totals = " | ".join(f"{sum(row.monthly[i] for row in rows):.2f}" for i in range(len(ORDERS_PER_MINUTE)))
    all_on = sum(row.with_snapstart[-1] for row in rows)
    all_off = sum(row.without_snapstart[-1] for row in rows)
    lines.append(f"| total | | as set | {totals} | {all_on:.2f} | {all_off:.2f} |")
    return "\n".join(lines)


def _every_minutes(expression: str) -> int:
    matched = SCHEDULE_RATE.fullmatch(expression)
    if matched is None:
        raise ValueError(f"not a rate in minutes: {expression}")
    return int(matched.group(1))


def _invoker(function: FunctionSpec) -> str:
    return ", ".join(sorted({trigger.kind for trigger in function.triggers})) or "no trigger"


if __name__ == "__main__":
    from devstack.template import load_template

    print(f"SnapStart per function (USD, list prices of {PRICES_DATE}, {COLD_START_SHARE:.0%} cold starts)\n")
    print(markdown_table(function_costs(Template(load_template()))))
