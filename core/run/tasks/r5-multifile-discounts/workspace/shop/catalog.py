"""The shop's prices."""

from decimal import Decimal

PRICES = {
    "apple": Decimal("0.40"),
    "bread": Decimal("2.20"),
    "coffee": Decimal("7.95"),
    "milk": Decimal("1.15"),
}


def price(item: str) -> Decimal:
    try:
        return PRICES[item]
    except KeyError:
        raise KeyError(f"unknown item: {item}") from None
