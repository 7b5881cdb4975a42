"""hot paths (issue #12): indexes for purges of finished jobs and for releasing claims

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # On PostgreSQL the indexes are built CONCURRENTLY: a large jobs table stays writable.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_jobs_completed_at", "jobs", ["completed_at"], postgresql_concurrently=True
        )
        op.create_index("ix_jobs_claimed_by", "jobs", ["claimed_by"], postgresql_concurrently=True)


def downgrade() -> None:
    op.drop_index("ix_jobs_claimed_by", table_name="jobs")
    op.drop_index("ix_jobs_completed_at", table_name="jobs")
