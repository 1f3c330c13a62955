"""Reads `key = value` settings files with [sections]."""

TRUE = ("true", "yes", "on")
FALSE = ("false", "no", "off")
COMMENT = ("#", ";")


def parse_line(line):
    """(key, value text) of one `key = value` line; None for a blank line, a comment or a
    section header. The value may hold `=` (the line is split at the first one only).
    A line without `=` raises ValueError."""
    line = line.strip()
    if not line or line.startswith(COMMENT) or (line.startswith("[") and line.endswith("]")):
        return None
    key, sep, value = line.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"expected key = value: {line!r}")
    return key.strip(), value.strip()


def convert(value):
    """A value's text as a bool (true/yes/on, false/no/off, any case), int, float, or a
    string with one pair of surrounding quotes removed."""
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def load(text):
    """The settings in `text` as {section: {key: value}}; keys before any section go under
    "" (the default section)."""
    result = {"": {}}
    section = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            result.setdefault(section, {})
            continue
        try:
            pair = parse_line(line)
        except ValueError:
            raise ValueError(f"line {number}: expected key = value") from None
        if pair is not None:
            result[section][pair[0]] = convert(pair[1])
    return result
