"""Discount codes: what each takes off a cart's lines."""

from decimal import Decimal

from shop.catalog import price

BULK_MIN = 10
BULK_OFF = Decimal("0.05")


def discount(code: str, lines: dict[str, int]) -> Decimal:
    """The amount `code` takes off a cart with these lines (item -> quantity)."""
    name = code.strip().upper()
    subtotal = sum((price(item) * qty for item, qty in lines.items()), Decimal("0"))
    if name == "SAVE10":
        return subtotal * Decimal("0.10")
    if name == "BULK":
        return sum((BULK_OFF * qty for qty in lines.values() if qty >= BULK_MIN), Decimal("0"))
    if name == "COFFEE2":
        return price("coffee") * (lines.get("coffee", 0) // 2)
    raise KeyError(f"unknown discount code: {code}")
