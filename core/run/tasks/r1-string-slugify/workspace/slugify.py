def slugify(text: str) -> str:
    """Return the URL slug of `text` (see TASK.md)."""
    raise NotImplementedError
