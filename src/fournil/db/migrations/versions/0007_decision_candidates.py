"""the candidates behind each gate decision

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_decisions") as batch:
        batch.add_column(
            sa.Column(
                "candidates",
                sa.JSON(),
                nullable=True,
                comment="every candidate's backtest WAPE and bias per horizon, and the routes",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("model_decisions") as batch:
        batch.drop_column("candidates")
