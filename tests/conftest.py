"""Shared fixtures live in tests/fixtures/, one module per real service."""

pytest_plugins = [
    "tests.fixtures.common",
    "tests.fixtures.smtp",
    "tests.fixtures.clamd",
    "tests.fixtures.postgres",
    "tests.fixtures.postfix",
]
