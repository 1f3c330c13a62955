"""Roman numerals for the numbers 1 to 3999."""

NUMERALS = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
            (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]
SINGLE = {"M": 1000, "D": 500, "C": 100, "L": 50, "X": 10, "V": 5, "I": 1}


def to_roman(number: int) -> str:
    """The Roman numeral of `number` (1 to 3999), e.g. 1994 -> "MCMXCIV"."""
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 3999:
        raise ValueError(f"out of range: {number!r}")
    out = []
    for value, letters in NUMERALS:
        while number >= value:
            out.append(letters)
            number -= value
    return "".join(out)


def from_roman(text: str) -> int:
    """The number a canonical Roman numeral stands for: from_roman("MCMXCIV") == 1994."""
    if not text or any(ch not in SINGLE for ch in text):
        raise ValueError(f"not a Roman numeral: {text!r}")
    total = 0
    for here, after in zip(text, text[1:] + " ", strict=True):
        value = SINGLE[here]
        total += -value if after != " " and SINGLE[after] > value else value
    if not 1 <= total <= 3999 or to_roman(total) != text:
        raise ValueError(f"not a canonical Roman numeral: {text!r}")
    return total
