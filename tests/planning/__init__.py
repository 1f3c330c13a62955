"""Tests of core/planning: the source-of-truth parser and the gates."""
