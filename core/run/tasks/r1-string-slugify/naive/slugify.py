def slugify(text: str) -> str:
    """A naive slug: what an engine that reads no spec would write."""
    return text.strip().lower().replace(" ", "-")
