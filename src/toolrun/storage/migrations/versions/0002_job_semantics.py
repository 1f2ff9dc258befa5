"""Job semantics: idempotency keys, retries, dead letters, progress.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JsonDoc = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    # Plain ADD COLUMNs (no table rebuild on SQLite); the key's uniqueness is a unique index,
    # which both backends allow to hold any number of NULLs.
    op.add_column("jobs", sa.Column("idempotency_key", sa.String(255), nullable=True))
    op.add_column("jobs", sa.Column("request_hash", sa.String(64), nullable=True))
    op.add_column("jobs", sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("dead_letter_reason", sa.String(16), nullable=True))
    op.add_column("jobs", sa.Column("dead_lettered_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("retry_of", sa.String(36), nullable=True))
    op.add_column("jobs", sa.Column("progress", JsonDoc, nullable=True))
    op.create_index("ux_jobs_idempotency_key", "jobs", ["idempotency_key"], unique=True)
    op.create_index("ix_jobs_dead_lettered_at", "jobs", ["dead_lettered_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_dead_lettered_at", "jobs")
    op.drop_index("ux_jobs_idempotency_key", "jobs")
    for column in (
        "progress",
        "retry_of",
        "dead_lettered_at",
        "dead_letter_reason",
        "next_attempt_at",
        "request_hash",
        "idempotency_key",
    ):
        op.drop_column("jobs", column)
