"""Tests of core/secrets: the redactor, the leak scans and the hardening of the harness's own
process."""
