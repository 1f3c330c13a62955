"""Hidden checks for r3-docstring-median."""

import pytest
from stats import median, mode


@pytest.mark.parametrize(("values", "expected"), [
    ([3, 1, 2], 2), ([1, 2], 1.5), ([5], 5), ([4, 1, 3, 2], 2.5), ([-1, -3, -2], -2),
    ([1.5, 0.5], 1.0), ([7, 7, 7, 7], 7.0), ([10, 2, 38, 23, 38, 23, 21], 23),
])
def test_median(values: list, expected: float) -> None:
    assert median(values) == expected


def test_median_of_an_even_count_is_a_float() -> None:
    assert isinstance(median([1, 3]), float)


def test_median_leaves_the_input_alone() -> None:
    data = [3, 1, 2]
    median(data)
    assert data == [3, 1, 2]


def test_median_of_a_generator() -> None:
    assert median(x for x in (5, 1, 4, 2)) == 3.0


def test_median_of_nothing() -> None:
    with pytest.raises(ValueError, match="median of no values"):
        median([])


@pytest.mark.parametrize(("values", "expected"), [
    ("abba", "a"), ("baab", "b"), ([1, 2, 2, 3], 2), ([3, 1, 1, 3, 2], 3), (["x"], "x"),
])
def test_mode(values, expected) -> None:
    assert mode(values) == expected


def test_mode_of_a_generator() -> None:
    assert mode(c for c in "mississippi") == "i"


def test_mode_of_nothing() -> None:
    with pytest.raises(ValueError, match="mode of no values"):
        mode(iter(()))
