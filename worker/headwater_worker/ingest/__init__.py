"""The Connector worker: sources → validate → transform → stage → load into PostgreSQL (seed 001)."""
