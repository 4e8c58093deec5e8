"""Inventory HTTP API: ``PUT /inventory/{sku}`` (staff set the catalogue and the stock) and the
public ``GET /inventory/{sku}``, the one route without a token."""

from typing import Annotated

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler.openapi.params import Path

from inventory.dependencies import dependencies
from inventory.domain import SKU_PATTERN, ProductNotFound, ProductUpdate, ProductView
from shop_common import snapstart
from shop_common.clock import utc_now
from shop_common.http import BODY_ERRORS, STAFF_ONLY, create_resolver, errors, make_api_handler
from shop_common.tracing import make_tracer

logger = Logger()
tracer = make_tracer()
metrics = Metrics()
app = create_resolver()

SkuPath = Annotated[str, Path(pattern=SKU_PATTERN)]


@app.put(
    "/inventory/<sku>",
    summary="Set a product and its stock on hand (staff only)",
    security=STAFF_ONLY,  # the catalogue and the stock are staff's to set; anyone may read them
    responses={
        200: {"description": "The product."},
        **errors(401, (403, "`forbidden`: the caller is not staff."), (404, "`not_found`: not a sku."), *BODY_ERRORS),
    },
)
@tracer.capture_method
def put_product(sku: SkuPath, update: ProductUpdate) -> ProductView:
    product = dependencies().repository.put_product(sku, update, utc_now())
    logger.info("Product stocked", extra={"sku": sku, "available": product.available})
    return product.view()


@app.get(
    "/inventory/<sku>",
    summary="Read a product of the catalogue (public: no token needed)",
    responses={
        200: {"description": "The product, with its stock available and reserved."},
        **errors((404, "`not_found`: no product has this sku, or it is not a sku.")),
    },
)
@tracer.capture_method
def get_product(sku: SkuPath) -> ProductView:
    product = dependencies().repository.get_product(sku)
    if product is None:
        raise ProductNotFound(sku)
    return product.view()


handler = make_api_handler(app, logger, tracer, metrics)
snapstart.prepare(dependencies)
