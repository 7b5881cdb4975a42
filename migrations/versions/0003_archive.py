"""the results archive (issue #9): archive_images, jobs.archive_status

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "archive_images",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source_url", sa.Text(), nullable=False),
        sa.Column("source_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("job_completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("object_key", sa.String(length=255), nullable=True),
        sa.Column("content_type", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("thumbnail_key", sa.String(length=255), nullable=True),
        sa.Column("thumbnail_bytes", sa.Integer(), nullable=True),
        sa.Column("thumbnail_sha256", sa.String(length=64), nullable=True),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_archive_images_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "index", name=op.f("pk_archive_images")),
    )
    with op.batch_alter_table("archive_images", schema=None) as batch_op:
        batch_op.create_index(
            "ix_archive_images_next_attempt_at", ["next_attempt_at"], unique=False
        )
        batch_op.create_index(
            "ix_archive_images_status_stored_at", ["status", "stored_at"], unique=False
        )

    # Jobs that completed before the archive keep archive_status NULL: `evolink-jobs archive
    # --backfill` archives those whose EvoLink links still work.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archive_status", sa.String(length=16), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_jobs_archive_status"), ["archive_status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_archive_status"))
        batch_op.drop_column("archive_status")

    with op.batch_alter_table("archive_images", schema=None) as batch_op:
        batch_op.drop_index("ix_archive_images_status_stored_at")
        batch_op.drop_index("ix_archive_images_next_attempt_at")

    op.drop_table("archive_images")
