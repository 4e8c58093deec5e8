"""Code shared by every service: settings, MongoDB client, events, outbox, idempotency, HTTP edge."""
