"""Closed intervals [start, end] of numbers."""


def merge(intervals):
    """Merge overlapping intervals: the result is sorted by start and has no two intervals
    that overlap or touch ([1, 2] and [2, 3] become [1, 3]). Empty input gives []."""
    result = []
    for start, end in intervals:
        if result and start < result[-1][1]:
            result[-1][1] = max(result[-1][1], end)
        else:
            result.append([start, end])
    return result


def covered(intervals):
    """The total length the intervals cover, each point counted once."""
    return sum(end - start for start, end in merge(intervals))
