"""Reads `key = value` settings files with [sections]."""


def load(text):
    """The settings in `text` as {section: {key: value}}; keys before any section go under
    "" (the default section). See test_config.py for what it accepts."""
    result = {"": {}}
    section = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith(";"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            result.setdefault(section, {})
            continue
        parts = line.split("=")
        if len(parts) != 2:
            raise ValueError(f"line {number}: expected key = value")
        key, value = parts[0].strip(), parts[1].strip()
        if value.lower() in ("true", "yes", "on"):
            value = True
        elif value.lower() in ("false", "no", "off"):
            value = False
        else:
            try:
                value = int(value)
            except ValueError:
                try:
                    value = float(value)
                except ValueError:
                    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                        value = value[1:-1]
        result[section][key] = value
    return result
