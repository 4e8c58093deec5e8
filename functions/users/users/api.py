"""Users HTTP API: ``POST /users`` (the caller registers their own profile) and ``GET /users/{user_id}``."""

from typing import Annotated

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.metrics import MetricUnit

from shop_common import snapstart
from shop_common.http import BODY_ERRORS, SIGNED_IN, create_resolver, created, errors, location_of, make_api_handler
from shop_common.identity import USER_ID_PATTERN, caller_of
from shop_common.tracing import make_tracer
from users.dependencies import dependencies, service
from users.domain import NewUser, UserView

logger = Logger()
tracer = make_tracer()
metrics = Metrics()
app = create_resolver()

UserIdPath = Annotated[str, Path(pattern=USER_ID_PATTERN)]


@app.post(
    "/users",
    summary="Register the caller's own profile",
    description=(
        "The id is the token's `sub`, the email the token's email, lower-cased; the token's `email_verified` "
        "must be true."
    ),
    security=SIGNED_IN,
    responses={
        **created("The caller's profile."),
        **errors(
            401,
            (403, "`email_not_verified`: the token's `email_verified` claim is not true."),
            (409, "`already_registered`: the caller has a profile already."),
            *BODY_ERRORS,
        ),
    },
)
@tracer.capture_method
def create_user(new_user: NewUser) -> Response[UserView]:
    user = service().register(caller_of(app.current_event), new_user, logger.get_correlation_id() or "unknown")
    metrics.add_metric(name="UsersRegistered", unit=MetricUnit.Count, value=1)
    logger.info("User registered", extra={"user_id": user.user_id})
    location = location_of(app.current_event, user.user_id)
    return Response(201, content_types.APPLICATION_JSON, user.view(), headers={"Location": location})


@app.get(
    "/users/<user_id>",
    summary="Read a profile: one's own, or anyone's for staff",
    security=SIGNED_IN,
    responses={200: {"description": "The user."}, **errors(401, 404)},
)
@tracer.capture_method
def get_user(user_id: UserIdPath) -> UserView:
    return service().get(caller_of(app.current_event), user_id).view()


handler = make_api_handler(app, logger, tracer, metrics)
snapstart.prepare(dependencies)
