"""Inventory service: products and stock; reserves or rejects orders, returns the stock of
cancelled orders and of failed payments."""
