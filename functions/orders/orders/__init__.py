"""Orders service: places, lists and cancels orders; moves them through the saga on inventory and payment events."""
