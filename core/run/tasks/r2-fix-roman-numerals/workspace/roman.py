"""Roman numerals for the numbers 1 to 3999."""

NUMERALS = [(1000, "M"), (500, "D"), (100, "C"), (50, "L"), (10, "X"), (5, "V"), (1, "I")]


def to_roman(number: int) -> str:
    """The Roman numeral of `number` (1 to 3999), e.g. 1994 -> "MCMXCIV"."""
    if not 1 <= number <= 3999:
        raise ValueError(f"out of range: {number}")
    out = []
    for value, letters in NUMERALS:
        while number >= value:
            out.append(letters)
            number -= value
    return "".join(out)


def from_roman(text: str) -> int:
    """The number a Roman numeral stands for: from_roman("MCMXCIV") == 1994."""
    values = {letters: value for value, letters in NUMERALS}
    return sum(values[ch] for ch in text)
