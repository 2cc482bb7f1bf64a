"""An extension's pruned variants: those it reopens (its job runs their new trials) and the new trials it left out.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("sweep_extensions", sa.Column("pruned_json", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("sweep_extensions", "pruned_json")
