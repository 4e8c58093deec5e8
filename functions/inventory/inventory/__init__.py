"""Inventory service: products and stock; reserves or rejects orders, returns cancelled stock."""
