"""engine_usage: the tokens LLM engines were sent and answered with, and what they cost

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("engine_usage", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("prompt_tokens", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("completion_tokens", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("cost", sa.Float(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("engine_usage", schema=None) as batch_op:
        batch_op.drop_column("cost")
        batch_op.drop_column("completion_tokens")
        batch_op.drop_column("prompt_tokens")
