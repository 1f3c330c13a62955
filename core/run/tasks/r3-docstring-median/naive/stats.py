def median(values):
    return sorted(values)[len(values) // 2]


def mode(values):
    return max(set(values), key=list(values).count)
