"""Scheduled outbox relay for the orders service (see shop_common.relay)."""

from shop_common.relay import make_relay_handler

from orders.dependencies import dependencies

handler = make_relay_handler(dependencies)
