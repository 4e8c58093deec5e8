"""Scheduled outbox relay for the users service (see shop_common.relay)."""

from shop_common import snapstart
from shop_common.relay import make_relay_handler
from users.dependencies import dependencies

handler = make_relay_handler(dependencies)
snapstart.prepare(dependencies)
