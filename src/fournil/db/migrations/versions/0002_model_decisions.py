"""model decisions audit table

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_decisions",
        sa.Column(
            "decision_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "decided_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column(
            "model_version",
            sa.String(length=50),
            nullable=False,
            comment="version the decision is about",
        ),
        sa.Column(
            "action", sa.String(length=20), nullable=False, comment="promoted, refused or rollback"
        ),
        sa.Column("champion_before", sa.String(length=50), nullable=True),
        sa.Column("champion_after", sa.String(length=50), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False, comment="list of reasons, one per check"),
        sa.Column(
            "metrics", sa.JSON(), nullable=False, comment="the numbers the decision was made on"
        ),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_model_decisions")),
        comment="Audit trail of the promotion gate and of rollbacks.",
    )
    op.create_index(
        "ix_model_decisions_model", "model_decisions", ["model_name", "decided_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_model_decisions_model", table_name="model_decisions")
    op.drop_table("model_decisions")
