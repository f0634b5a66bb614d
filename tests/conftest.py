"""Fixtures for real servers live in tests/fixtures/; they start only when a test asks for them."""

pytest_plugins = [
    "tests.fixtures.cluster",
    "tests.fixtures.postgres",
    "tests.fixtures.s3",
    "tests.fixtures.gemini",
    "tests.fixtures.operator",
    "tests.fixtures.package",
    "tests.fixtures.gateway",
]
