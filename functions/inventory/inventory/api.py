"""Inventory HTTP API (stock administration): ``PUT`` and ``GET /inventory/{sku}``."""

from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.utilities.typing import LambdaContext

from inventory.dependencies import dependencies
from inventory.domain import SKU_PATTERN, ProductNotFound, ProductUpdate, ProductView
from shop_common.clock import utc_now
from shop_common.http import create_resolver, serve
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


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return serve(app, event, context, logger)
