"""Extensions of a sweep: the sweep's extension count, and one row per extension (its Idempotency-Key, new trials).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("sweeps", sa.Column("extensions", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "sweep_extensions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sweep_id", sa.String(32), sa.ForeignKey("sweeps.id"), nullable=False, index=True),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("trials_json", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sweep_extensions")
    op.drop_column("sweeps", "extensions")
