"""Tests of core/evidence: what a run directory holds and how it is read, checked and cross-
checked."""
