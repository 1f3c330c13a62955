"""The dashboard's widgets, one per file, each with its own default styles."""
