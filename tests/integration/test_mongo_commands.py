"""MongoDB round trips per request on the happy path, counted with pymongo command monitoring.

Counted on a warm container (indexes already ensured), as almost every request runs. Knowing
the caller costs nothing: the identity comes with the event, and ownership is read with the
document the request reads anyway.
"""

from __future__ import annotations

from shop_common.identity import Caller
from tests.conftest import AwsResources
from tests.integration.test_orders_api import cancel, get_order, list_page, place, register_user
from tests.support import GRACE, Response, ServiceRuntime, api_event, command_counter, customer
from users import api as users_api


def get_profile(users: ServiceRuntime, user_id: str, caller: Caller) -> Response:
    return users.http(users_api.handler, api_event("api-users-get", path_params={"user_id": user_id}, caller=caller))


def test_commands_per_request(runtimes: dict[str, ServiceRuntime], aws: AwsResources) -> None:
    users, orders = runtimes["users"], runtimes["orders"]
    ada = register_user(runtimes, aws)
    place(orders, ada)  # warms the orders container
    newcomer = customer("newcomer")

    with command_counter.recording() as create_user:
        assert users.http(users_api.handler, api_event("api-users-create", caller=newcomer)).status == 201
    with command_counter.recording() as get_own_profile:
        assert get_profile(users, newcomer.user_id, newcomer).status == 200
    with command_counter.recording() as get_others_profile:
        assert get_profile(users, newcomer.user_id, ada).status == 404
    with command_counter.recording() as place_plain:
        order = place(orders, ada).body
    with command_counter.recording() as place_keyed:
        assert place(orders, ada, key="count-me").status == 201
    with command_counter.recording() as get_own_order:
        assert get_order(orders, order["order_id"], ada).status == 200
    with command_counter.recording() as get_as_staff:
        assert get_order(orders, order["order_id"], GRACE).status == 200
    with command_counter.recording() as get_others_order:
        assert get_order(orders, order["order_id"], newcomer).status == 404
    with command_counter.recording() as list_orders:
        listed = list_page(orders, ada.user_id, limit="2")
    with command_counter.recording() as list_others:
        assert list_page(orders, ada.user_id, newcomer).status == 404
    with command_counter.recording() as cancel_order:
        assert cancel(orders, order["order_id"], ada).status == 200
    assert listed.body["next_cursor"] is not None

    assert [c.split(".")[1] for c in create_user] == ["insert", "update"]
    assert [c.split(".")[1] for c in get_own_profile] == ["find"]
    assert get_others_profile == []  # refused without a read
    assert [c.split(".")[1] for c in place_plain] == ["find", "insert", "update"]
    assert len(place_keyed) == 5
    assert [c.split(".")[1] for c in get_own_order] == ["find"]
    assert [c.split(".")[1] for c in get_as_staff] == ["find"]
    assert [c.split(".")[1] for c in get_others_order] == ["find"]
    assert [c.split(".")[1] for c in list_orders] == ["find"]
    assert list_others == []
    assert [c.split(".")[1] for c in cancel_order] == ["find", "update", "update"]
