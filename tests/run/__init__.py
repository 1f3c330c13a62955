"""Tests of core/run: one Case run end to end — admission, guard, checks, tasks, readiness,
supervision."""
