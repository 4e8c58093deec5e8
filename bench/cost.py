"""Dollars per million orders through the whole saga, from measured durations.

List prices, US East (N. Virginia). Lambda arm64 prices were checked against the AWS Lambda
pricing page on 2026-11-23; the SQS, SNS, API Gateway and SES figures are AWS's long-standing
list prices, not re-checked that day. Free tiers and volume tiers are ignored (worst case).
Stripe's own fees (per charge, a share of the amount) are left out: they are the payment's
price, not the backend's, and dwarf every line here. SnapStart's restore and cache prices are
AWS's published us-east-1 figures for SnapStart on Python and .NET (not re-checked on the
pricing page that day; the architecture does not change them as far as published).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PRICES_DATE = "2026-11-23"
LAMBDA_ARM_GB_SECOND = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1_000_000
SQS_REQUEST = 0.40 / 1_000_000  # standard queue, per 64 KiB chunk
SNS_PUBLISH = 0.50 / 1_000_000  # deliveries to SQS and Lambda are free
API_GATEWAY_REST_REQUEST = 3.50 / 1_000_000
SES_EMAIL = 0.10 / 1_000
# SnapStart (us-east-1 list prices): a restore is charged per GB of the function's memory, and each
# published version's snapshot is cached per GB-second while the version is active (3 hours at least).
SNAPSTART_RESTORE_GB = 0.0001397998
SNAPSTART_CACHE_GB_SECOND = 0.0000015046
MEMORY_GB = 512 / 1024  # every saga function, the payments consumer included (its timeout: 60 s, not 10 s)
COLD_START_SHARE = 0.01  # share of invocations that start a new container (a restore, or an INIT without SnapStart)

# Per order through the saga (place -> reserve and record the payment -> charge -> confirm ->
# email): the functions it runs and the messages it causes. The payments consumer runs twice
# (OrderPlaced, InventoryReserved), the orders consumer twice (InventoryReserved records the
# total, PaymentSucceeded confirms). SQS requests per message: send (by SNS) + receive + delete,
# with batches of one (the worst case; batching divides the last two).
SAGA_FUNCTIONS = ["POST /orders", "inventory consumer (OrderPlaced)", "payments consumer (OrderPlaced)",
                  "payments consumer (InventoryReserved, charge)", "orders consumer (InventoryReserved)",
                  "orders consumer (PaymentSucceeded)", "notifications (OrderConfirmed)"]  # fmt: skip
SNS_PUBLISHES_PER_ORDER = 4  # OrderPlaced, InventoryReserved, PaymentSucceeded, OrderConfirmed
# OrderPlaced to inventory and payments, InventoryReserved to orders and payments, PaymentSucceeded to orders
SQS_MESSAGES_PER_ORDER = 5
SQS_REQUESTS_PER_MESSAGE = 3


@dataclass
class CostLine:
    item: str
    dollars_per_million_orders: float


def saga_cost(
    billed_ms: dict[str, float], start_ms: dict[str, float], snapstart: frozenset[str] = frozenset()
) -> list[CostLine]:
    """``billed_ms`` per function path, and ``start_ms``, what a new container bills before it: for a
    path in ``snapstart`` (template.yaml: the API functions), the after-restore hooks Lambda bills on
    each restored container (its Billed Restore Duration also counts loading the runtime, which no
    local run can measure), and its restore charge; for any other, its INIT (billed since August
    2025: the handler module's import)."""
    lines = []
    for function in SAGA_FUNCTIONS:
        duration_s = math.ceil(billed_ms[function]) / 1000
        start_s = math.ceil(start_ms.get(function, 0.0)) / 1000 * COLD_START_SHARE
        compute = (duration_s + start_s) * MEMORY_GB * LAMBDA_ARM_GB_SECOND * 1_000_000
        lines.append(CostLine(f"Lambda {function}", compute + LAMBDA_REQUEST * 1_000_000))
    restores = sum(1 for function in SAGA_FUNCTIONS if function in snapstart) * COLD_START_SHARE * 1_000_000
    lines.append(CostLine("SnapStart restores", restores * MEMORY_GB * SNAPSTART_RESTORE_GB))
    lines.append(CostLine("API Gateway (REST) request", API_GATEWAY_REST_REQUEST * 1_000_000))
    lines.append(CostLine("SNS publishes", SNS_PUBLISHES_PER_ORDER * SNS_PUBLISH * 1_000_000))
    lines.append(CostLine("SQS requests", SQS_MESSAGES_PER_ORDER * SQS_REQUESTS_PER_MESSAGE * SQS_REQUEST * 1_000_000))
    lines.append(CostLine("SES email", SES_EMAIL * 1_000_000))
    return lines


def snapstart_cache_per_month(functions: int) -> float:
    """Dollars a month to keep one active published version of each of ``functions`` snapshotted."""
    return functions * MEMORY_GB * 30 * 24 * 3600 * SNAPSTART_CACHE_GB_SECOND
