"""Hidden checks for r5-multifile-discounts."""

from decimal import Decimal

import pytest
from shop.cart import Cart
from shop.discounts import discount


def cart(**lines: int) -> Cart:
    c = Cart()
    for item, qty in lines.items():
        c.add(item, qty)
    return c


def test_no_code_is_the_subtotal() -> None:
    assert cart(apple=3, milk=1).total() == Decimal("2.35")


def test_save10_rounds_half_up_to_cents() -> None:
    c = cart(coffee=1, apple=1)  # 8.35 - 0.835 = 7.515
    c.apply_code("SAVE10")
    assert c.total() == Decimal("7.52")


def test_codes_ignore_case_and_spaces() -> None:
    c = cart(bread=1)
    c.apply_code(" save10 ")
    assert c.total() == Decimal("1.98")


def test_bulk_takes_five_cents_off_each_unit_of_a_line_of_ten_or_more() -> None:
    c = cart(apple=12, milk=2)
    c.apply_code("BULK")
    assert c.total() == Decimal("4.80") + Decimal("2.30") - Decimal("0.60")


def test_every_second_coffee_is_free() -> None:
    c = cart(coffee=5)
    c.apply_code("COFFEE2")
    assert c.total() == Decimal("23.85")


def test_a_second_code_replaces_the_first() -> None:
    c = cart(coffee=2)
    c.apply_code("SAVE10")
    c.apply_code("COFFEE2")
    assert c.total() == Decimal("7.95")


def test_an_unknown_code_is_refused_and_changes_nothing() -> None:
    c = cart(bread=2)
    c.apply_code("SAVE10")
    with pytest.raises(KeyError):
        c.apply_code("FREE")
    assert c.total() == Decimal("3.96")


def test_discount_is_the_amount_off() -> None:
    assert discount("SAVE10", {"bread": 1}) == Decimal("0.22")
    assert discount("COFFEE2", {"coffee": 3, "milk": 1}) == Decimal("7.95")
    assert discount("BULK", {"apple": 9}) == Decimal("0")
    with pytest.raises(KeyError):
        discount("NOPE", {})


def test_total_is_a_decimal_in_cents() -> None:
    total = cart(apple=1).total()
    assert isinstance(total, Decimal) and total == Decimal("0.40")
