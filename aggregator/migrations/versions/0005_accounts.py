"""users, browser sessions and login throttling counters

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import aggregator.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    moment = aggregator.models.UTCDateTime
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_key", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=300), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", moment(), nullable=False),
        sa.Column("password_changed_at", moment(), nullable=False),
        sa.Column("disabled_at", moment(), nullable=True),
        sa.Column("last_login_at", moment(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("name_key"),
    )
    op.create_table(
        "browser_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("password_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("created_at", moment(), nullable=False),
        sa.Column("last_seen_at", moment(), nullable=False),
        sa.Column("expires_at", moment(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    with op.batch_alter_table("browser_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_browser_sessions_user_id"), ["user_id"])
        batch_op.create_index(batch_op.f("ix_browser_sessions_expires_at"), ["expires_at"])
    op.create_table(
        "login_attempts",
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("client", sa.String(length=100), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_allowed_at", moment(), nullable=False),
        sa.Column("last_attempt_at", moment(), nullable=False),
        sa.PrimaryKeyConstraint("account", "client"),
    )
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_attempts_last_attempt_at"), ["last_attempt_at"])


def downgrade() -> None:
    op.drop_table("login_attempts")
    op.drop_table("browser_sessions")
    op.drop_table("users")
