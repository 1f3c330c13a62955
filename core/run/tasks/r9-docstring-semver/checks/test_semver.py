"""Hidden checks for r9-docstring-semver (the precedence example of semver.org 2.0.0)."""

import pytest
from semver import compare, parse, sort_versions

ORDERED = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
           "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0"]


def test_parse() -> None:
    assert parse("1.2.3") == (1, 2, 3, ())
    assert parse("1.2.3-rc.1+build.5") == (1, 2, 3, ("rc", 1))
    assert parse("0.0.0-0.x-y") == (0, 0, 0, (0, "x-y"))


@pytest.mark.parametrize("bad", ["1.2", "1.2.3.4", "01.2.3", "1.2.3-", "1.2.3-rc..1",
                                 "1.2.3-01", "v1.2.3", "1.2.3-r@c", ""])
def test_parse_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        parse(bad)


def test_every_pair_of_the_spec_example() -> None:
    for i, a in enumerate(ORDERED):
        for j, b in enumerate(ORDERED):
            assert compare(a, b) == (i > j) - (i < j), (a, b)


def test_build_metadata_does_not_count() -> None:
    assert compare("1.0.0+a", "1.0.0+b") == 0
    assert compare("1.0.0-rc.1+x", "1.0.0-rc.1") == 0


def test_sort_versions() -> None:
    assert sort_versions(list(reversed(ORDERED))) == ORDERED
