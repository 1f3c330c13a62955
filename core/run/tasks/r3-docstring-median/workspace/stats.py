"""Small statistics helpers."""


def median(values):
    """Return the median of `values`, an iterable of numbers.

    - The values need not be sorted, and the caller's data is not modified.
    - An odd count gives the middle value; an even count gives the mean of the two middle
      values, as a float: median([1, 2]) == 1.5, median([3, 1, 2]) == 2.
    - Any iterable works, generators included.
    - No values: raise ValueError("median of no values").
    """
    raise NotImplementedError


def mode(values):
    """Return the most common value of `values` (any iterable of hashable values).

    - Ties go to the value seen first: mode("abba") == "a".
    - No values: raise ValueError("mode of no values").
    """
    raise NotImplementedError
