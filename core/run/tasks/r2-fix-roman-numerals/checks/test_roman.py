"""Hidden checks for r2-fix-roman-numerals."""

import pytest
from roman import from_roman, to_roman

KNOWN = [(1, "I"), (3, "III"), (4, "IV"), (9, "IX"), (14, "XIV"), (40, "XL"), (90, "XC"),
         (400, "CD"), (900, "CM"), (1994, "MCMXCIV"), (2024, "MMXXIV"), (3999, "MMMCMXCIX")]


@pytest.mark.parametrize(("number", "numeral"), KNOWN)
def test_to_roman(number: int, numeral: str) -> None:
    assert to_roman(number) == numeral


@pytest.mark.parametrize(("number", "numeral"), KNOWN)
def test_from_roman(number: int, numeral: str) -> None:
    assert from_roman(numeral) == number


def test_round_trip_every_number() -> None:
    for number in range(1, 4000):
        assert from_roman(to_roman(number)) == number


@pytest.mark.parametrize("bad", ["", "IIII", "VX", "IC", "ABC", "MMMM", "iv", "XIIX"])
def test_from_roman_refuses_what_is_not_canonical(bad: str) -> None:
    with pytest.raises(ValueError):
        from_roman(bad)


@pytest.mark.parametrize("bad", [0, -1, 4000])
def test_to_roman_refuses_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError):
        to_roman(bad)
