"""Scheduled outbox relay for the inventory service (see shop_common.relay)."""

from inventory.dependencies import dependencies
from shop_common import snapstart
from shop_common.relay import make_relay_handler

handler = make_relay_handler(dependencies)
snapstart.prepare(dependencies)
