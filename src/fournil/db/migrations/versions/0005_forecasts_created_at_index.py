"""index forecasts.created_at (the API's change check)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 22:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_forecasts_created_at", "forecasts", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_forecasts_created_at", table_name="forecasts")
