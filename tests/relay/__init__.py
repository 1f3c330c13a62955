"""Tests of core/relay: the loopback relay between the Case and the endpoint, its rules and its
ledger."""
