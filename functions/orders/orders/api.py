"""Orders HTTP API: place (optionally idempotent), read, list and cancel the caller's orders."""

from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query

from orders.dependencies import dependencies, service
from orders.domain import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    ORDER_ID_PATTERN,
    IdempotencyKey,
    NewOrder,
    OrderPage,
    OrderView,
)
from shop_common import snapstart
from shop_common.http import BODY_ERRORS, SIGNED_IN, create_resolver, created, errors, location_of, make_api_handler
from shop_common.identity import USER_ID_PATTERN, Caller, caller_of
from shop_common.tracing import make_tracer

logger = Logger()
tracer = make_tracer()
metrics = Metrics()
app = create_resolver()

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retries with the same key and body place the order once; keys are the caller's own.",
    ),
]
OrderIdPath = Annotated[str, Path(pattern=ORDER_ID_PATTERN)]
UserIdPath = Annotated[str, Path(pattern=USER_ID_PATTERN)]
NOT_ONES_OWN = (404, "`not_found`: no such order, or not the caller's (unless staff).")


def _place(caller: Caller, body: dict[str, Any], idempotency_key: IdempotencyKey | None = None) -> dict[str, Any]:
    correlation_id = logger.get_correlation_id() or "unknown"
    order = service().place(caller, NewOrder.model_validate(body), correlation_id, idempotency_key)
    logger.info("Order placed", extra={"order_id": order.order_id, "user_id": order.user_id})
    return order.view().model_dump(mode="json")


@app.post(
    "/orders",
    summary="Place an order for the caller",
    security=SIGNED_IN,
    responses={
        **created("The order, PENDING."),
        **errors(
            401,
            (403, "`forbidden`: `user_id` is not the caller's."),
            (409, "`idempotency_key_in_flight`: a request with this key is still running."),
            (
                422,
                "`validation_error`; `unknown_user`: the caller has no profile yet (or it is not known yet); "
                "`idempotency_key_reused`: the key came with another body.",
            ),
            *BODY_ERRORS,
        ),
    },
)
@tracer.capture_method
def create_order(new_order: NewOrder, idempotency_key: IdempotencyKeyHeader = None) -> Response[OrderView]:
    caller = caller_of(app.current_event)
    body = new_order.model_dump(mode="json")
    if idempotency_key is None:
        stored = _place(caller, body)
    else:
        from orders.idempotency import place_once

        stored = place_once(caller, IdempotencyKey.of(caller, idempotency_key), body, _place, app.lambda_context)
    view = OrderView.model_validate(stored)
    location = location_of(app.current_event, view.order_id)
    return Response(201, content_types.APPLICATION_JSON, view, headers={"Location": location})


@app.get(
    "/orders/<order_id>",
    summary="Read an order: the owner's, or anyone's for staff",
    security=SIGNED_IN,
    responses={200: {"description": "The order."}, **errors(401, NOT_ONES_OWN)},
)
@tracer.capture_method
def get_order(order_id: OrderIdPath) -> OrderView:
    return service().get(caller_of(app.current_event), order_id).view()


@app.get(
    "/users/<user_id>/orders",
    summary="List a user's orders, newest first: one's own, or anyone's for staff",
    security=SIGNED_IN,
    responses={
        200: {"description": "A page of orders; `next_cursor` fetches the next, null on the last."},
        **errors(
            401,
            (404, "`not_found`: the list is not the caller's (unless staff)."),
            (422, "`validation_error`: a bad limit, or a cursor this API did not issue for this list."),
        ),
    },
)
@tracer.capture_method
def list_user_orders(
    user_id: UserIdPath,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Orders per page.")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=512, description="The previous page's `next_cursor`.")] = None,
) -> OrderPage:
    orders, next_cursor = service().page(caller_of(app.current_event), user_id, limit, cursor)
    return OrderPage(orders=[order.view() for order in orders], next_cursor=next_cursor)


@app.post(
    "/orders/<order_id>/cancel",
    summary="Cancel an order: the owner's, or anyone's for staff",
    security=SIGNED_IN,
    responses={
        200: {"description": "The order, CANCELLED (cancelling it again changes nothing)."},
        **errors(401, NOT_ONES_OWN, (409, "`not_cancellable`: the order is REJECTED.")),
    },
)
@tracer.capture_method
def cancel_order(order_id: OrderIdPath) -> OrderView:
    order = service().cancel(caller_of(app.current_event), order_id, logger.get_correlation_id() or "unknown")
    logger.info("Order cancel requested", extra={"order_id": order_id, "status": order.status.value})
    return order.view()


handler = make_api_handler(app, logger, tracer, metrics)
snapstart.prepare(dependencies, imports=["orders.idempotency"])  # Idempotency-Key: Powertools, boto3
