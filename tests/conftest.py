"""Shared pytest configuration. Fixtures for each tier live in tests/support/ and are imported here."""
