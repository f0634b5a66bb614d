"""Alembic environment of the ingest schema.

The connection comes from `config.attributes["connection"]` (how the worker runs migrations, under its
advisory lock), else from `sqlalchemy.url`, else from the `DATABASE_URL` environment variable.
"""

from __future__ import annotations

import os

from alembic import context
from headwater_worker.ingest.schema import VERSION_TABLE, sqlalchemy_url
from headwater_worker.ingest.schema.models import metadata
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

config = context.config


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or sqlalchemy_url(os.environ["DATABASE_URL"])
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run `python -m headwater_worker ingest migrate`")
run_online()
