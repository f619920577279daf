"""Shared test configuration: fixture modules are registered as plugins here."""

pytest_plugins = ["tests.receivers.shairport", "tests.sharding"]
