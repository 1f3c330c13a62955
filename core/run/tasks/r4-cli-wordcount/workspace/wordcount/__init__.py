"""Word counting (see TASK.md)."""
