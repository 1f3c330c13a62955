"""Reads `key = value` settings files with [sections]."""


def parse_line(line):
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    key, value = line.split("=")
    return key.strip(), value.strip()


def load(text):
    result = {"": {}}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line[1:-1]
            result.setdefault(section, {})
            continue
        pair = parse_line(line)
        if pair:
            result[section][pair[0]] = pair[1]
    return result
