"""drafts: the tokens and cost of each draft's translation, and when it was made

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import aggregator.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("drafts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prompt_tokens", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("completion_tokens", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cost", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("translated_at", aggregator.models.UTCDateTime(), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_drafts_translated_at"), ["translated_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("drafts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drafts_translated_at"))
        batch_op.drop_column("translated_at")
        batch_op.drop_column("cost")
        batch_op.drop_column("completion_tokens")
        batch_op.drop_column("prompt_tokens")
