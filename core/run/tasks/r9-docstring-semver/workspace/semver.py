"""Semantic versions (https://semver.org, 2.0.0)."""


def parse(version):
    """`MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]` as (major, minor, patch, prerelease), where
    prerelease is a tuple of its dot-separated identifiers, numeric ones as ints:
    parse("1.2.3-rc.1+build.5") == (1, 2, 3, ("rc", 1)). The build part is dropped.

    Raise ValueError for anything else: a missing part, a number with a leading zero
    ("01.2.3"), an empty identifier ("1.2.3-rc..1"), or characters outside [0-9A-Za-z-].
    """
    raise NotImplementedError


def compare(a, b):
    """-1, 0 or 1 as version `a` has lower, equal or higher precedence than `b`:

    - MAJOR, MINOR and PATCH compare as numbers;
    - a pre-release is lower than its release: 1.0.0-alpha < 1.0.0;
    - pre-releases compare identifier by identifier: numeric ones as numbers, others in
      ASCII order, a numeric one lower than a non-numeric one; when all shared ones are
      equal, the one with more identifiers is higher;
    - build metadata never counts: compare("1.0.0+a", "1.0.0+b") == 0.
    """
    raise NotImplementedError


def sort_versions(versions):
    """The versions (strings) from lowest to highest precedence."""
    raise NotImplementedError
