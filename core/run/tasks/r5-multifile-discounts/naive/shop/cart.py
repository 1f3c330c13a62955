"""A shopping cart."""

from decimal import Decimal

from shop.catalog import price


class Cart:
    def __init__(self) -> None:
        self.lines: dict[str, int] = {}

    def add(self, item: str, quantity: int = 1) -> None:
        if quantity < 1:
            raise ValueError("quantity must be 1 or more")
        price(item)  # an unknown item is refused here
        self.lines[item] = self.lines.get(item, 0) + quantity

    def subtotal(self) -> Decimal:
        return sum((price(item) * qty for item, qty in self.lines.items()), Decimal("0.00"))

    def apply_code(self, code: str) -> None:
        self.code = code

    def total(self) -> Decimal:
        if getattr(self, "code", None) == "SAVE10":
            return self.subtotal() * Decimal("0.9")
        return self.subtotal()
