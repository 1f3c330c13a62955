"""Small statistics helpers."""

from collections import Counter


def median(values):
    """The median of `values` (see the task): the middle value, or the mean of the two."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("median of no values")
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def mode(values):
    """The most common value; ties go to the value seen first."""
    counts = Counter(values)  # keeps first-seen order
    if not counts:
        raise ValueError("mode of no values")
    best = max(counts.values())
    return next(value for value, count in counts.items() if count == best)
