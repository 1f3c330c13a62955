"""A shopping cart."""

from decimal import ROUND_HALF_UP, Decimal

from shop.catalog import price
from shop.discounts import discount

CENT = Decimal("0.01")


class Cart:
    def __init__(self) -> None:
        self.lines: dict[str, int] = {}
        self.code: str | None = None

    def add(self, item: str, quantity: int = 1) -> None:
        if quantity < 1:
            raise ValueError("quantity must be 1 or more")
        price(item)  # an unknown item is refused here
        self.lines[item] = self.lines.get(item, 0) + quantity

    def apply_code(self, code: str) -> None:
        discount(code, {})  # an unknown code raises KeyError before anything changes
        self.code = code

    def subtotal(self) -> Decimal:
        return sum((price(item) * qty for item, qty in self.lines.items()), Decimal("0.00"))

    def total(self) -> Decimal:
        off = discount(self.code, self.lines) if self.code else Decimal("0")
        return max(Decimal("0"), self.subtotal() - off).quantize(CENT, ROUND_HALF_UP)
