"""MongoDB round trips per request on the happy path, counted with pymongo command monitoring.

Counted on a warm container (indexes already ensured), as almost every request runs.
"""

from __future__ import annotations

from orders import api as orders_api
from tests.conftest import AwsResources
from tests.integration.test_orders_api import place, register_user
from tests.support import ServiceRuntime, api_event, command_counter
from users import api as users_api


def test_commands_per_request(runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> None:
    users, orders = runtimes["users"], runtimes["orders"]
    user_id = register_user(runtimes, aws, email="warm@example.com")
    place(orders, user_id)  # warms the orders container

    with command_counter.recording() as create_user:
        created = users.http(
            users_api.handler, api_event("api-users-create", body={"email": "b@example.com", "name": "B"})
        )
    with command_counter.recording() as get_user:
        users.http(users_api.handler, api_event("api-users-get", path_params={"user_id": created.body["user_id"]}))
    with command_counter.recording() as place_plain:
        order = place(orders, user_id).body
    with command_counter.recording() as place_keyed:
        assert place(orders, user_id, key="count-me").status == 201
    with command_counter.recording() as get_order:
        orders.http(orders_api.handler, api_event("api-orders-get", path_params={"order_id": order["order_id"]}))
    with command_counter.recording() as list_orders:
        listed = orders.http(
            orders_api.handler, api_event("api-orders-list", path_params={"user_id": user_id}, query={"limit": "2"})
        )
    assert listed.body["next_cursor"] is not None

    assert [c.split(".")[1] for c in create_user] == ["insert", "update"]
    assert [c.split(".")[1] for c in get_user] == ["find"]
    assert [c.split(".")[1] for c in place_plain] == ["find", "insert", "update"]
    assert len(place_keyed) == 5
    assert [c.split(".")[1] for c in get_order] == ["find"]
    assert [c.split(".")[1] for c in list_orders] == ["find"]
