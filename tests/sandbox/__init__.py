"""Tests of core/sandbox: the bubblewrap sandbox the Case and the checks run in, and attacks on
it."""
