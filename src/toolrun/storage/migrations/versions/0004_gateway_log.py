"""The gateway's request log: one row per /v1 request (GET /v1/logs).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JsonDoc = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "gateway_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("mode", sa.String(16), nullable=True),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("rounds", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("request", JsonDoc, nullable=True),
        sa.Column("response", JsonDoc, nullable=True),
    )
    op.create_index("ix_gateway_log_request_id", "gateway_log", ["request_id"])
    op.create_index("ix_gateway_log_key_id", "gateway_log", ["key_id"])


def downgrade() -> None:
    op.drop_index("ix_gateway_log_key_id", "gateway_log")
    op.drop_index("ix_gateway_log_request_id", "gateway_log")
    op.drop_table("gateway_log")
