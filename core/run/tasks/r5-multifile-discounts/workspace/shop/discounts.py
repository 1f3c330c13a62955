"""Discount codes (see TASK.md)."""
