"""Hidden checks for r1-string-slugify: copied into the workspace only when checks run."""

import pytest
from slugify import slugify

CASES = [
    ("Hello, World!", "hello-world"),
    ("  Crème Brûlée  ", "creme-brulee"),
    ("", ""),
    ("---", ""),
    ("already-a-slug", "already-a-slug"),
    ("Ünïcödé ÄÖÜ", "unicode-aou"),
    ("a__b  c--d", "a-b-c-d"),
    ("ﬁve Ⅻ ½", "five-xii-12"),
    ("日本語 text", "text"),
    ("CamelCase123abc", "camelcase123abc"),
    ("tab\tand\nnewline", "tab-and-newline"),
    ("-leading and trailing-", "leading-and-trailing"),
    ("Émile Zola", "emile-zola"),
    ("xxx!!!y", "xxx-y"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_slugify(text: str, expected: str) -> None:
    assert slugify(text) == expected


def test_returns_str() -> None:
    assert isinstance(slugify("A b"), str)
