"""initial warehouse schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "etl_runs",
        sa.Column(
            "run_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "batch_id",
            sa.String(length=36),
            nullable=False,
            comment="groups the files of one ETL call",
        ),
        sa.Column("source", sa.Text(), nullable=False, comment="path of the file loaded"),
        sa.Column(
            "kind", sa.String(length=20), nullable=False, comment="sales, stores or products"
        ),
        sa.Column("file_sha256", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "status", sa.String(length=20), nullable=False, comment="running, success or failed"
        ),
        sa.Column("rows_read", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_inserted", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_updated", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_unchanged", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_rejected", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False, comment="list of warning strings"),
        sa.Column("error", sa.Text(), nullable=True, comment="one-line reason of a failed run"),
        sa.CheckConstraint(
            "status IN ('running', 'success', 'failed')", name=op.f("ck_etl_runs_status_known")
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_etl_runs")),
        comment="One row per file an ETL call loaded; counts reconcile: read = inserted + updated + unchanged + rejected.",
    )
    with op.batch_alter_table("etl_runs", schema=None) as batch_op:
        batch_op.create_index("ix_etl_runs_file_sha256", ["file_sha256"], unique=False)
        batch_op.create_index("ix_etl_runs_started_at", ["started_at"], unique=False)

    op.create_table(
        "products",
        sa.Column("product_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "family", sa.String(length=100), nullable=False, comment="e.g. viennoiserie, pain"
        ),
        sa.Column("base_price", sa.Float(), nullable=False),
        sa.Column("launched_on", sa.Date(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("base_price > 0", name=op.f("ck_products_base_price_positive")),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_products")),
        comment="One row per product of the catalogue.",
    )
    op.create_table(
        "stores",
        sa.Column("store_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("city", sa.String(length=100), nullable=False),
        sa.Column("region", sa.String(length=100), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False, comment="first trading day"),
        sa.Column("closed_on", sa.Date(), nullable=True, comment="last trading day, if closed"),
        sa.Column("size_m2", sa.Float(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("store_id", name=op.f("pk_stores")),
        comment="One row per store of the chain.",
    )
    op.create_table(
        "forecasts",
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("model_version", sa.String(length=50), nullable=False),
        sa.Column(
            "forecast_date", sa.Date(), nullable=False, comment="day the forecast was made for"
        ),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("target_date", sa.Date(), nullable=False, comment="day being forecast"),
        sa.Column(
            "horizon",
            sa.Integer(),
            nullable=False,
            comment="days from forecast_date to target_date",
        ),
        sa.Column("yhat", sa.Float(), nullable=False),
        sa.Column("yhat_lower", sa.Float(), nullable=True),
        sa.Column("yhat_upper", sa.Float(), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True, comment="MLflow run of the model"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.product_id"], name=op.f("fk_forecasts_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.store_id"], name=op.f("fk_forecasts_store_id_stores")
        ),
        sa.PrimaryKeyConstraint(
            "model_name",
            "model_version",
            "forecast_date",
            "store_id",
            "product_id",
            "target_date",
            name=op.f("pk_forecasts"),
        ),
        comment="Batch forecasts; idempotent per (model version, forecast date).",
    )
    with op.batch_alter_table("forecasts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_forecasts_lookup", ["store_id", "product_id", "target_date"], unique=False
        )
        batch_op.create_index("ix_forecasts_target_date", ["target_date"], unique=False)

    op.create_table(
        "quarantine",
        sa.Column(
            "quarantine_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("etl_run_id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False, comment="file the row came from"),
        sa.Column(
            "line", sa.BigInteger(), nullable=True, comment="line in a CSV, row number in Parquet"
        ),
        sa.Column("raw", sa.JSON(), nullable=False, comment="the row as read, every field as text"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["etl_run_id"],
            ["etl_runs.run_id"],
            name=op.f("fk_quarantine_etl_run_id_etl_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("quarantine_id", name=op.f("pk_quarantine")),
        comment="Rows an ETL run rejected, each with its reason; nothing is dropped silently.",
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index("ix_quarantine_etl_run_id", ["etl_run_id"], unique=False)

    op.create_table(
        "sales",
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("sale_date", sa.Date(), nullable=False),
        sa.Column("units_sold", sa.Integer(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False, comment="unit price charged that day"),
        sa.Column("promo", sa.Boolean(), nullable=False),
        sa.Column(
            "stock_out",
            sa.Boolean(),
            nullable=True,
            comment="NULL where the store does not report it",
        ),
        sa.Column(
            "etl_run_id", sa.BigInteger(), nullable=False, comment="run that last wrote the row"
        ),
        sa.CheckConstraint("price > 0", name=op.f("ck_sales_price_positive")),
        sa.CheckConstraint("units_sold >= 0", name=op.f("ck_sales_units_non_negative")),
        sa.PrimaryKeyConstraint("store_id", "product_id", "sale_date", name=op.f("pk_sales")),
        comment="Daily unit sales per store and product.",
    )
    with op.batch_alter_table("sales", schema=None) as batch_op:
        batch_op.create_index("ix_sales_sale_date", ["sale_date"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("sales", schema=None) as batch_op:
        batch_op.drop_index("ix_sales_sale_date")

    op.drop_table("sales")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index("ix_quarantine_etl_run_id")

    op.drop_table("quarantine")
    with op.batch_alter_table("forecasts", schema=None) as batch_op:
        batch_op.drop_index("ix_forecasts_target_date")
        batch_op.drop_index("ix_forecasts_lookup")

    op.drop_table("forecasts")
    op.drop_table("stores")
    op.drop_table("products")
    with op.batch_alter_table("etl_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_etl_runs_started_at")
        batch_op.drop_index("ix_etl_runs_file_sha256")

    op.drop_table("etl_runs")
