"""Orders HTTP API: place (optionally idempotent), read, list and cancel orders."""

from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Header, Query
from aws_lambda_powertools.metrics import MetricUnit

from orders.dependencies import service
from orders.domain import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    IdempotencyKey,
    NewOrder,
    OrderPage,
    OrderView,
)
from shop_common.http import create_resolver, make_api_handler
from shop_common.tracing import make_tracer

logger = Logger()
tracer = make_tracer()
metrics = Metrics()
app = create_resolver()

IdempotencyKeyHeader = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)]
# Keys are global today; scoping them per caller means passing the caller's id here instead.
GLOBAL_KEY_SCOPE = "global"


def _place(body: dict[str, Any], idempotency_key: IdempotencyKey | None = None) -> dict[str, Any]:
    order = service().place(NewOrder.model_validate(body), logger.get_correlation_id() or "unknown", idempotency_key)
    metrics.add_metric(name="OrdersPlaced", unit=MetricUnit.Count, value=1)
    logger.info("Order placed", extra={"order_id": order.order_id, "user_id": order.user_id})
    return order.view().model_dump(mode="json")


@app.post("/orders")
@tracer.capture_method
def create_order(new_order: NewOrder, idempotency_key: IdempotencyKeyHeader = None) -> Response[OrderView]:
    body = new_order.model_dump(mode="json")
    if idempotency_key is None:
        stored = _place(body)
    else:
        from orders.idempotency import place_once

        stored = place_once(IdempotencyKey(GLOBAL_KEY_SCOPE, idempotency_key), body, _place, app.lambda_context)
    view = OrderView.model_validate(stored)
    return Response(201, content_types.APPLICATION_JSON, view, headers={"Location": f"/orders/{view.order_id}"})


@app.get("/orders/<order_id>")
@tracer.capture_method
def get_order(order_id: str) -> OrderView:
    return service().get(order_id).view()


@app.get("/users/<user_id>/orders")
@tracer.capture_method
def list_user_orders(
    user_id: str,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> OrderPage:
    orders, next_cursor = service().page(user_id, limit, cursor)
    return OrderPage(orders=[order.view() for order in orders], next_cursor=next_cursor)


@app.post("/orders/<order_id>/cancel")
@tracer.capture_method
def cancel_order(order_id: str) -> OrderView:
    order = service().cancel(order_id, logger.get_correlation_id() or "unknown")
    logger.info("Order cancel requested", extra={"order_id": order_id, "status": order.status.value})
    return order.view()


handler = make_api_handler(app, logger, tracer, metrics)
