"""The ingest schema: SQLAlchemy tables and the Alembic migrations that create them."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import psycopg

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# One fixed key: every Headwater ingest run against one database takes the same lock, so migrations never
# run twice at once. (The number is arbitrary; it only has to be the same everywhere.)
MIGRATION_LOCK_KEY = 0x48574D4947  # "HWMIG"
VERSION_TABLE = "headwater_ingest_version"
# The newest revision in migrations/versions/ (a test checks that Alembic agrees).
HEAD = "0002"


def libpq_dsn(dsn: str) -> str:
    """A DSN without SQLAlchemy's driver suffix (`postgresql+psycopg://` → `postgresql://`)."""
    return re.sub(r"^(postgres(?:ql)?)\+[a-z0-9_]+://", r"\1://", dsn.strip(), flags=re.I)


def sqlalchemy_url(dsn: str) -> str:
    """A libpq URL as SQLAlchemy's psycopg 3 URL."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    return "postgresql+psycopg://?" + "&".join(
        f"{key}={value}" for key, value in psycopg.conninfo.conninfo_to_dict(dsn).items()
    )


def alembic_config(dsn: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation treats '%' specially: escape percent-encoded passwords.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(dsn).replace("%", "%%"))
    return config


def ensure(dsn: str) -> str:
    """The schema at `HEAD`: one query when it already is (importing Alembic alone takes longer), else
    `migrate`. Whatever prevents the query (no database, no version table) is left to `migrate`."""
    try:
        with psycopg.connect(libpq_dsn(dsn), connect_timeout=10) as conn:
            row = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    except psycopg.Error:
        row = None
    if row is not None and row[0] == HEAD:
        return HEAD
    return migrate(dsn)


def migrate(dsn: str) -> str:
    """Bring the schema to the newest revision, under an advisory lock; returns the revision."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, text

    engine = create_engine(sqlalchemy_url(dsn), poolclass=_null_pool())
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
            try:
                config = alembic_config(dsn)
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
                revision = MigrationContext.configure(
                    connection, opts={"version_table": VERSION_TABLE}
                ).get_current_revision()
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                connection.commit()
    finally:
        engine.dispose()
    log.info("schema migrated", extra={"fields": {"revision": revision}})
    return str(revision)


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool
