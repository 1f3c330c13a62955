"""Tests of core/cli: the command line as a real process, its parser and its help."""
