"""MongoDB work is attempted again only while the invocation has time for it (issue 15, defect 13).

pymongo's ``with_transaction`` retries a transaction that keeps hitting a transient error (a
contended sku, an election) for up to 120 s; inside a 10 s function Lambda's timeout would kill
the whole batch. Transactions and the compare-and-set loops of orders and payments give up in
time instead, with OutOfTime, and the record fails alone and returns to its queue.

The invocation's clock is a fake whose remaining time the test sets (and advances per attempt),
so that what is asserted is the number of attempts and the error, never a duration. The
contention is real: another session holds an uncommitted write on the product, so every attempt
of the reservation meets a write conflict on the real mongod.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from devstack.worker import LocalContext
from inventory import consumer as inventory_consumer
from inventory import domain
from inventory.domain import Product, ProductUpdate
from inventory.repository import InventoryRepository
from orders.dependencies import service as orders_service
from payments.dependencies import service as payments_service
from shop_common.clock import utc_now
from shop_common.events import InventoryReservedData, OrderLine, OrderPlaced, OrderPlacedData, PricedLine, new_event
from shop_common.runtime import (
    COMPARE_AND_SET_RESERVE_SECONDS,
    MONGODB_RESERVE_SECONDS,
    OutOfTime,
    within_invocation,
)
from tests.integration.test_inventory import placed, put, stock
from tests.support import ServiceRuntime, command_counter, failed_ids, sqs_batch

LINES = [OrderLine(sku="BOOK-1", quantity=1)]


@dataclass
class ClockedContext(LocalContext):
    """A Lambda context whose remaining time is what the test says: ``left`` seconds, less ``tick``
    each time the clock is read."""

    left: float = 0.0
    tick: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        millis = int(self.left * 1000)
        self.left -= self.tick
        return max(0, millis)

    @classmethod
    def with_left(cls, seconds: float, tick: float = 0.0) -> ClockedContext:
        fresh = LocalContext.fresh("clocked")
        return cls(**{**fresh.__dict__, "left": seconds, "tick": tick})


@contextmanager
def held(client: MongoClient, collection: Collection, document_id: str) -> Iterator[None]:
    """Another transaction's write on the document, uncommitted until the block ends: every
    transaction that writes it meanwhile meets a write conflict."""
    with client.start_session() as session:
        session.start_transaction()
        collection.update_one({"_id": document_id}, {"$set": {"held": True}}, session=session)
        try:
            yield
        finally:
            session.abort_transaction()


@pytest.fixture
def inventory_database(mongo_client: MongoClient) -> Iterator[Any]:
    name = f"deadline_{uuid.uuid4().hex[:12]}"
    yield mongo_client[name]
    mongo_client.drop_database(name)


def test_a_contended_reservation_gives_up_when_the_invocation_runs_out_of_time(
    mongo_client: MongoClient, inventory_database: Any
) -> None:
    repository = InventoryRepository(inventory_database)
    repository.put_product("BOOK-1", ProductUpdate(name="Book", unit_price_cents=2500, available=10), utc_now())
    # Each attempt takes a second of the invocation's time: with the reserve and 2.5 s more left,
    # attempts start with 2.5, 1.5 and 0.5 s beyond the reserve, and a fourth would not.
    context = ClockedContext.with_left(MONGODB_RESERVE_SECONDS + 2.5)
    attempts: list[float] = []

    def decide(products: Mapping[str, Product]) -> domain.ReservationDecision:
        attempts.append(context.left)
        context.left -= 1.0
        assert len(attempts) <= 10, "still retrying with no time left"
        return domain.decide("order-1", LINES, products, "corr-deadline", utc_now())

    def reserve(event: Any, _: Any) -> Any:
        return repository.reserve("order-1", LINES, decide, utc_now())

    with held(mongo_client, repository.products, "BOOK-1"), pytest.raises(OutOfTime, match="after 3 attempts"):
        within_invocation(reserve)({}, context)

    assert len(attempts) == 3
    assert inventory_database["reservations"].count_documents({}) == 0
    assert repository.get_product("BOOK-1") == Product("BOOK-1", "Book", 2500, 10, 0)


def starts_no_attempt(runtime: ServiceRuntime, work: Callable[[], Any]) -> None:
    """``work``, run with only the reserve for an attempt left, gives up before its first read or write."""
    with (
        mock.patch.dict("os.environ", runtime.env),
        command_counter.recording() as commands,
        pytest.raises(OutOfTime, match="after 0 attempts"),
    ):
        within_invocation(lambda event, context: work())({}, ClockedContext.with_left(COMPARE_AND_SET_RESERVE_SECONDS))
    assert not [command for command in commands if command.rpartition(".")[2] in ("find", "insert", "update")]


# Orders' transitions and payments' changes re-read and retry when another writer got in between
# (a compare-and-set): an attempt needs the time for its read and write, or it does not start.


def test_an_orders_transition_starts_no_attempt_without_time_for_it(runtimes: dict[str, ServiceRuntime]) -> None:
    line = PricedLine(sku="BOOK-1", quantity=1, unit_price_cents=100)
    reserved = InventoryReservedData(order_id="order-1", lines=[line], total_cents=100)
    starts_no_attempt(runtimes["orders"], lambda: orders_service().record_reservation(reserved))


def test_a_payments_change_starts_no_attempt_without_time_for_it(runtimes: dict[str, ServiceRuntime]) -> None:
    data = OrderPlacedData(order_id="order-1", user_id="u1", items=LINES, payment_method="pm_card_visa")
    placed_event = new_event(OrderPlaced, data, "corr-deadline")
    starts_no_attempt(runtimes["payments"], lambda: payments_service().handle(placed_event))


def test_a_record_whose_reservation_cannot_finish_in_time_fails_alone_and_the_batch_returns(
    runtimes: dict[str, ServiceRuntime], mongo_client: MongoClient
) -> None:
    inventory = runtimes["inventory"]
    put(inventory, "BOOK-1", 10)
    put(inventory, "PEN-7", 10)
    contended = placed("contended", [{"sku": "BOOK-1", "quantity": 1}])
    free = placed("free", [{"sku": "PEN-7", "quantity": 1}])
    batch = sqs_batch("sqs-inventory-batch", [free, contended])
    products = mongo_client[inventory.env["MONGODB_DATABASE"]]["products"]
    # Every reading of the clock takes a second; the transactions read it once per attempt.
    context = ClockedContext.with_left(10, tick=1.0)

    with (
        mock.patch.dict("os.environ", inventory.env),
        held(mongo_client, products, "BOOK-1"),
        command_counter.recording() as commands,
    ):
        response = inventory_consumer.handler(batch, context)

    assert failed_ids(response) == [batch["Records"][1]["messageId"]]
    assert 1 <= commands.count("admin.abortTransaction") < 10  # one per attempt that met the conflict
    assert stock(inventory, "BOOK-1") == (10, 0)
    assert stock(inventory, "PEN-7") == (9, 1)
