"""how each ETL run read its file (the CSV dialect detected or given); runs of unknown files

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("etl_runs") as batch:
        batch.alter_column(
            "kind",
            existing_type=sa.String(20),
            existing_nullable=False,
            comment="sales, stores, products or unknown",
            existing_comment="sales, stores or products",
        )
        batch.add_column(
            sa.Column(
                "reader",
                sa.JSON(),
                nullable=True,
                comment="how the file was read: encoding, delimiter, decimal, date format, and "
                "which of them were given rather than detected",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("etl_runs") as batch:
        batch.drop_column("reader")
        batch.alter_column(
            "kind",
            existing_type=sa.String(20),
            existing_nullable=False,
            comment="sales, stores or products",
            existing_comment="sales, stores, products or unknown",
        )
