def parse(version):
    return tuple(int(p) for p in version.split("+")[0].split("-")[0].split("."))


def compare(a, b):
    x, y = parse(a), parse(b)
    return (x > y) - (x < y)


def sort_versions(versions):
    return sorted(versions, key=parse)
