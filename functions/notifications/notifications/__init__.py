"""Notifications service: one email per customer-facing event, through Amazon SES."""
