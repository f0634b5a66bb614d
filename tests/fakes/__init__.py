"""Local fakes of external APIs, for tests."""
