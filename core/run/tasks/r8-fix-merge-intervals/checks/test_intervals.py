"""Hidden checks for r8-fix-merge-intervals."""

import copy

import pytest
from intervals import covered, merge


@pytest.mark.parametrize(("given", "merged"), [
    ([], []),
    ([[1, 3]], [[1, 3]]),
    ([[1, 3], [2, 6], [8, 10]], [[1, 6], [8, 10]]),
    ([[8, 10], [1, 3], [2, 6]], [[1, 6], [8, 10]]),
    ([[1, 2], [2, 3]], [[1, 3]]),
    ([[5, 5], [1, 2]], [[1, 2], [5, 5]]),
    ([[1, 10], [2, 3], [4, 5]], [[1, 10]]),
    ([(0.5, 1.5), (1.5, 2.0)], [[0.5, 2.0]]),
    ([[3, 4], [1, 2], [2, 3]], [[1, 4]]),
])
def test_merge(given, merged) -> None:
    assert merge(given) == merged


def test_the_input_is_left_alone() -> None:
    given = [[5, 7], [1, 6]]
    before = copy.deepcopy(given)
    merge(given)
    assert given == before


def test_a_reversed_pair_is_refused() -> None:
    with pytest.raises(ValueError):
        merge([[1, 2], [4, 3]])


def test_covered() -> None:
    assert covered([[3, 5], [1, 2], [2, 4]]) == 4
