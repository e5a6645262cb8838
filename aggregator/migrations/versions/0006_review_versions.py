"""the published version of a draft, withdrawal and the editor's edits kept across redrafts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import aggregator.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("drafts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("published_title", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("published_body_html", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("published_approved_at", aggregator.models.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("published_by", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("withdrawn_at", aggregator.models.UTCDateTime(), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_drafts_published_approved_at"), ["published_approved_at"], unique=False
        )
    # What is approved today is what is published: it stays so.
    op.execute(
        "UPDATE drafts SET published_title = title, published_body_html = body_html, "
        "published_approved_at = COALESCE(approved_at, updated_at), published_by = reviewed_by "
        "WHERE status = 'approved'"
    )
    op.create_table(
        "draft_edits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("block", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("new_source", sa.Text(), nullable=True),
        sa.Column("flagged_at", aggregator.models.UTCDateTime(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("updated_at", aggregator.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["draft_id"], ["drafts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("draft_edits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_draft_edits_draft_id"), ["draft_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("draft_edits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_draft_edits_draft_id"))
    op.drop_table("draft_edits")
    # A withdrawn draft was published once; without the column it is simply rejected.
    op.execute("UPDATE drafts SET status = 'rejected' WHERE status = 'withdrawn'")
    with op.batch_alter_table("drafts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drafts_published_approved_at"))
        batch_op.drop_column("withdrawn_at")
        batch_op.drop_column("published_by")
        batch_op.drop_column("published_approved_at")
        batch_op.drop_column("published_body_html")
        batch_op.drop_column("published_title")
