"""web console (issue #13): an index for the admin's jobs page across all callers

The console's admin view lists every caller's jobs newest first; without this index
PostgreSQL sorts the whole table for each page (111 ms at 305 k jobs; 0.1 ms with it).

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Built CONCURRENTLY on PostgreSQL: a large jobs table stays writable meanwhile.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_jobs_created_at", "jobs", ["created_at", "id"], postgresql_concurrently=True
        )


def downgrade() -> None:
    op.drop_index("ix_jobs_created_at", table_name="jobs")
