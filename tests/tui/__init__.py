"""Tests of tui/: the dashboard driven by Textual's pilot, in snapshots and in a real terminal."""
