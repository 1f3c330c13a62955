"""The cto-harness dashboard (Textual)."""
