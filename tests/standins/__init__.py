"""Tests of core/standins: the endpoint, demo, local model and reference Case that stand in for
the user's."""
