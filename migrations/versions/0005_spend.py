"""spend control (issue #11): spend_entries (the ledger), spend_counters (limits), spend_blocks

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Jobs created before this revision have no ledger entry: they count against no limit.
    op.create_table(
        "spend_entries",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("evolink_reserved", sa.Float(), nullable=True),
        sa.Column("charged", sa.Float(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_spend_entries_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_spend_entries")),
    )
    with op.batch_alter_table("spend_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_spend_entries_caller_created_at", ["caller", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_spend_entries_created_at"), ["created_at"], unique=False
        )
    op.create_table(
        "spend_counters",
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("minute_key", sa.String(length=20), nullable=False),
        sa.Column("minute_jobs", sa.Integer(), nullable=False),
        sa.Column("day_key", sa.String(length=20), nullable=False),
        sa.Column("day_credits", sa.Float(), nullable=False),
        sa.Column("month_key", sa.String(length=20), nullable=False),
        sa.Column("month_credits", sa.Float(), nullable=False),
        sa.Column("in_flight", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_spend_counters")),
    )
    op.create_table(
        "spend_blocks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("since_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_spend_blocks")),
    )


def downgrade() -> None:
    op.drop_table("spend_blocks")
    op.drop_table("spend_counters")
    with op.batch_alter_table("spend_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spend_entries_created_at"))
        batch_op.drop_index("ix_spend_entries_caller_created_at")
    op.drop_table("spend_entries")
