"""Natural-language sessions: one row per turn of ``POST /execute``.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JsonDoc = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "session_turns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("tool_id", sa.String(300), nullable=True),
        sa.Column("arguments", JsonDoc, nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("result", JsonDoc, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_session_turns_session_id", "session_turns", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_session_turns_session_id", "session_turns")
    op.drop_table("session_turns")
