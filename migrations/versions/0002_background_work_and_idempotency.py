"""background work, claims and idempotency keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 11:41:15.656969
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
        "idempotency_keys",
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_idempotency_keys_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("caller", "key", name=op.f("pk_idempotency_keys")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_keys_created_at"), ["created_at"], unique=False
        )

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("final_source", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("callback_received_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("submit_state", sa.String(length=16), nullable=False, server_default="done")
        )
        batch_op.add_column(
            sa.Column("submit_attempts", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.add_column(sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("poll_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_jobs_next_attempt_at", ["next_attempt_at"], unique=False)

    # Jobs from before background work: poll the unfinished ones now; a queued one was being
    # sent when its process stopped, so it may have reached EvoLink and must not be resent.
    op.execute(
        "UPDATE jobs SET next_attempt_at = CURRENT_TIMESTAMP "
        "WHERE status IN ('queued', 'pending', 'processing')"
    )
    op.execute("UPDATE jobs SET submit_state = 'unknown' WHERE status = 'queued'")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for column in ("submit_state", "submit_attempts", "poll_attempts"):
            batch_op.alter_column(column, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_next_attempt_at")
        batch_op.drop_column("claim_expires_at")
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("poll_attempts")
        batch_op.drop_column("submitted_at")
        batch_op.drop_column("submit_attempts")
        batch_op.drop_column("submit_state")
        batch_op.drop_column("callback_received_at")
        batch_op.drop_column("final_source")

    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_created_at"))

    op.drop_table("idempotency_keys")
