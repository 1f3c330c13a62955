"""Semantic versions (https://semver.org, 2.0.0)."""

import functools
import re

CORE = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
                  r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
                  r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?")


def _identifier(text):
    if text.isdigit():
        if len(text) > 1 and text[0] == "0":
            raise ValueError(f"numeric identifier with a leading zero: {text!r}")
        return int(text)
    return text


def parse(version):
    """`MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]` as (major, minor, patch, prerelease)."""
    match = CORE.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise ValueError(f"not a semantic version: {version!r}")
    major, minor, patch, pre, _build = match.groups()
    prerelease = tuple(_identifier(p) for p in pre.split(".")) if pre else ()
    return int(major), int(minor), int(patch), prerelease


def _compare_identifiers(x, y):
    if isinstance(x, int) and isinstance(y, int):
        return (x > y) - (x < y)
    if isinstance(x, int):
        return -1
    if isinstance(y, int):
        return 1
    return (x > y) - (x < y)


def compare(a, b):
    """-1, 0 or 1 as `a` has lower, equal or higher precedence than `b`."""
    pa, pb = parse(a), parse(b)
    if pa[:3] != pb[:3]:
        return -1 if pa[:3] < pb[:3] else 1
    xa, xb = pa[3], pb[3]
    if not xa or not xb:
        return (not xa) - (not xb)
    for x, y in zip(xa, xb, strict=False):
        order = _compare_identifiers(x, y)
        if order:
            return order
    return (len(xa) > len(xb)) - (len(xa) < len(xb))


def sort_versions(versions):
    """The versions from lowest to highest precedence."""
    return sorted(versions, key=functools.cmp_to_key(compare))
