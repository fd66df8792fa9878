"""how each ETL run read its file (the CSV dialect detected or given); runs of unknown files;
the report flow and the backtest RMSE in the pipeline runs' comments

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

    with op.batch_alter_table("pipeline_runs") as batch:
        batch.alter_column(
            "flow",
            existing_type=sa.String(50),
            existing_nullable=False,
            comment="etl, train, forecast, monitor or report",
            existing_comment="etl, train, forecast or monitor",
        )
        batch.alter_column(
            "metrics",
            existing_type=sa.JSON(),
            existing_nullable=False,
            comment="e.g. train_rmse, backtest_rmse, wape",
            existing_comment="e.g. train_rmse, val_rmse, wape",
        )


def downgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.alter_column(
            "flow",
            existing_type=sa.String(50),
            existing_nullable=False,
            comment="etl, train, forecast or monitor",
            existing_comment="etl, train, forecast, monitor or report",
        )
        batch.alter_column(
            "metrics",
            existing_type=sa.JSON(),
            existing_nullable=False,
            comment="e.g. train_rmse, val_rmse, wape",
            existing_comment="e.g. train_rmse, backtest_rmse, wape",
        )
    with op.batch_alter_table("etl_runs") as batch:
        batch.drop_column("reader")
        batch.alter_column(
            "kind",
            existing_type=sa.String(20),
            existing_nullable=False,
            comment="sales, stores or products",
            existing_comment="sales, stores, products or unknown",
        )
