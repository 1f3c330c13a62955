"""Closed intervals [start, end] of numbers."""


def merge(intervals):
    result = []
    for start, end in sorted(intervals):
        if result and start < result[-1][1]:
            result[-1][1] = max(result[-1][1], end)
        else:
            result.append([start, end])
    return result


def covered(intervals):
    return sum(end - start for start, end in merge(intervals))
