"""Payments service: charges an order once its stock is reserved, refunds it if cancelled."""
