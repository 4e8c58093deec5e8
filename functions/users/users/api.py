"""Users HTTP API: ``POST /users`` and ``GET /users/{user_id}``."""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.metrics import MetricUnit

from shop_common.clock import utc_now
from shop_common.http import create_resolver, make_api_handler
from shop_common.tracing import make_tracer
from users.dependencies import dependencies
from users.domain import NewUser, UserNotFound, UserView, register

logger = Logger()
tracer = make_tracer()
metrics = Metrics()
app = create_resolver()


@app.post("/users")
@tracer.capture_method
def create_user(new_user: NewUser) -> Response[UserView]:
    deps = dependencies()
    user, event = register(new_user, logger.get_correlation_id() or "unknown", utc_now())
    pending = deps.repository.insert(user, event)
    deps.outbox.flush(deps.repository.users, user.user_id, [pending])
    metrics.add_metric(name="UsersRegistered", unit=MetricUnit.Count, value=1)
    logger.info("User registered", extra={"user_id": user.user_id})
    return Response(201, content_types.APPLICATION_JSON, user.view(), headers={"Location": f"/users/{user.user_id}"})


@app.get("/users/<user_id>")
@tracer.capture_method
def get_user(user_id: str) -> UserView:
    user = dependencies().repository.get(user_id)
    if user is None:
        raise UserNotFound(user_id)
    return user.view()


handler = make_api_handler(app, logger, tracer, metrics)
