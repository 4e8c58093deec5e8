"""Inventory HTTP API (stock administration): ``PUT`` and ``GET /inventory/{sku}``."""

from typing import Annotated

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler.openapi.params import Path

from inventory.dependencies import dependencies
from inventory.domain import SKU_PATTERN, ProductNotFound, ProductUpdate, ProductView
from shop_common.clock import utc_now
from shop_common.http import create_resolver, make_api_handler
from shop_common.tracing import make_tracer

logger = Logger()
tracer = make_tracer()
metrics = Metrics()
app = create_resolver()

SkuPath = Annotated[str, Path(pattern=SKU_PATTERN)]


@app.put("/inventory/<sku>")
@tracer.capture_method
def put_product(sku: SkuPath, update: ProductUpdate) -> ProductView:
    product = dependencies().repository.put_product(sku, update, utc_now())
    logger.info("Product stocked", extra={"sku": sku, "available": product.available})
    return product.view()


@app.get("/inventory/<sku>")
@tracer.capture_method
def get_product(sku: SkuPath) -> ProductView:
    product = dependencies().repository.get_product(sku)
    if product is None:
        raise ProductNotFound(sku)
    return product.view()


handler = make_api_handler(app, logger, tracer, metrics)
