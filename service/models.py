"""SQLAlchemy 2 tables of the service (the schema itself is created by the Alembic migrations)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class SweepRow(Base):
    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    spec_json: Mapped[str] = mapped_column(Text)
    spec_hash: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    trials: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the Ray Job's current submission id
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    runs_closed: Mapped[bool] = mapped_column(Boolean, default=False)  # no MLflow run of it left open
    extensions: Mapped[int] = mapped_column(Integer, default=0)  # how often it was extended (service/extend.py)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ExtensionRow(Base):
    """One extension of a sweep: its number n (its job is ``{sweep id}-x{n}``), the Idempotency-Key it came with and
    the hash of what it asked for, its new trials (JSON list of NewTrial), and what it did with pruned variants."""

    __tablename__ = "sweep_extensions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sweep_id: Mapped[str] = mapped_column(String(32), ForeignKey("sweeps.id"), index=True)
    n: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    trials_json: Mapped[str] = mapped_column(Text)
    # {"reopen": [variant], "kept_pruned": [NewTrial]}: pruned variants it runs after all, new trials it left out
    pruned_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
