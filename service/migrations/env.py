"""Alembic environment: runs on the connection the service hands over (``Database.migrate``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from service.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # `alembic upgrade head` from the command line
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
