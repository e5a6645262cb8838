"""Alembic environment: run against the connection that Store.upgrade() hands over."""

from __future__ import annotations

from alembic import context

from aggregator.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only the program runs migrations
    raise RuntimeError("run migrations with `aggregator db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
