"""The SnapStart cost model (bench/snapstart_cost.py) on template.yaml: every function is in it,
the template sets SnapStart where the model says it pays, and the figures are the prices'."""

from __future__ import annotations

import pytest

from bench import cost, snapstart_cost
from bench.cost import LAMBDA_ARM_GB_SECOND, SNAPSTART_CACHE_GB_SECOND, SNAPSTART_RESTORE_GB
from devstack.template import Template, load_template


@pytest.fixture(scope="module")
def rows() -> dict[str, snapstart_cost.FunctionCost]:
    return {row.function: row for row in snapstart_cost.function_costs(Template(load_template()))}


def test_the_template_sets_snapstart_where_the_model_says_it_pays(rows: dict[str, snapstart_cost.FunctionCost]) -> None:
    assert len(rows) == len(Template(load_template()).functions())
    assert {name for name, row in rows.items() if row.pays} == {
        "UsersApiFunction",
        "OrdersApiFunction",
        "InventoryApiFunction",
    }
    for name, row in rows.items():
        assert row.snapstart == row.pays, name


def test_snapstart_costs_more_than_the_init_it_replaces_at_every_rate(
    rows: dict[str, snapstart_cost.FunctionCost],
) -> None:
    """Why it is on only where a person waits: in dollars it never pays."""
    for name, row in rows.items():
        for with_it, without in zip(row.with_snapstart, row.without_snapstart, strict=True):
            assert with_it > without, name


def test_the_figures_of_one_api_function_and_one_schedule(rows: dict[str, snapstart_cost.FunctionCost]) -> None:
    memory_gb = 0.5
    cache = memory_gb * 30 * 24 * 3600 * SNAPSTART_CACHE_GB_SECOND  # $1.95 a month
    # POST /orders and GET /orders/{id} per order, 10 orders a minute for 30 days; 1% cold starts.
    cold_starts = 2 * 10 * 43_200 * 0.01
    restore = memory_gb * SNAPSTART_RESTORE_GB + 0.001 * memory_gb * LAMBDA_ARM_GB_SECOND
    orders_api = rows["OrdersApiFunction"]
    assert orders_api.with_snapstart[1] == pytest.approx(cache + cold_starts * restore)
    assert orders_api.without_snapstart[1] == pytest.approx(cold_starts * 0.240 * memory_gb * LAMBDA_ARM_GB_SECOND)
    assert orders_api.monthly == orders_api.with_snapstart

    relay = rows["OrdersOutboxRelayFunction"]  # every minute, whatever the orders
    assert (
        relay.without_snapstart[0]
        == relay.without_snapstart[2]
        == pytest.approx(43_200 * 0.01 * 0.240 * memory_gb * LAMBDA_ARM_GB_SECOND)
    )
    assert relay.monthly == relay.without_snapstart


def test_the_table_has_a_row_per_function_and_the_totals() -> None:
    rows = snapstart_cost.function_costs(Template(load_template()))
    table = snapstart_cost.markdown_table(rows).splitlines()
    assert len(table) == 2 + len(rows) + 1
    assert table[-1].startswith("| total |")


def test_the_saga_cost_charges_restores_only_to_the_snapstart_paths() -> None:
    billed = dict.fromkeys(cost.SAGA_FUNCTIONS, 10.0)
    start = {name: 1.0 if name == "POST /orders" else 240.0 for name in cost.SAGA_FUNCTIONS}
    lines = {
        line.item: line.dollars_per_million_orders
        for line in cost.saga_cost(billed, start, frozenset({"POST /orders"}))
    }

    per_gb_second = cost.MEMORY_GB * cost.LAMBDA_ARM_GB_SECOND * 1_000_000
    restores = cost.COLD_START_SHARE * 1_000_000 * cost.MEMORY_GB * cost.SNAPSTART_RESTORE_GB
    assert lines["SnapStart restores"] == pytest.approx(restores)  # one path's, not the seven's
    request = cost.LAMBDA_REQUEST * 1_000_000
    assert lines["Lambda POST /orders"] == pytest.approx((0.010 + 0.001 * 0.01) * per_gb_second + request)
    assert lines["Lambda orders consumer (PaymentSucceeded)"] == pytest.approx(
        (0.010 + 0.240 * 0.01) * per_gb_second + request
    )
