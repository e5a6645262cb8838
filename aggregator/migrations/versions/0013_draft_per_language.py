"""drafts: one per entry and target language (a feed's ``languages``), not one per entry;
each says whether it is to be translated again (``redraft_requested``)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# The initial schema left the one-draft-per-entry constraint unnamed; SQLite's copy of the
# table is told what to call it so that it can be dropped by name.
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _entry_constraint() -> str:
    """The one-column unique constraint on drafts.entry_id, as the database named it."""
    for constraint in sa.inspect(op.get_bind()).get_unique_constraints("drafts"):
        if constraint["column_names"] == ["entry_id"] and constraint["name"]:
            return str(constraint["name"])
    return "uq_drafts_entry_id"


def upgrade() -> None:
    name = _entry_constraint()
    with op.batch_alter_table("drafts", naming_convention=_NAMING) as batch_op:
        batch_op.drop_constraint(name, type_="unique")
        batch_op.create_unique_constraint(
            "uq_drafts_entry_language", ["entry_id", "target_language"]
        )
        batch_op.create_index("ix_drafts_entry_id", ["entry_id"])
        batch_op.add_column(
            sa.Column("redraft_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # A pending draft whose entry waits for translation was sent back (its original changed,
    # or an editor asked): until now the entry's state alone said so.
    op.execute(
        "UPDATE drafts SET redraft_requested = true WHERE status = 'pending' AND entry_id IN "
        "(SELECT id FROM entries WHERE state IN ('new', 'extracted'))"
    )


def downgrade() -> None:
    # Back to one draft per entry: every entry keeps its oldest draft.
    op.execute("DELETE FROM drafts WHERE id NOT IN (SELECT MIN(id) FROM drafts GROUP BY entry_id)")
    with op.batch_alter_table("drafts", naming_convention=_NAMING) as batch_op:
        batch_op.drop_column("redraft_requested")
        batch_op.drop_index("ix_drafts_entry_id")
        batch_op.drop_constraint("uq_drafts_entry_language", type_="unique")
        batch_op.create_unique_constraint("uq_drafts_entry_id", ["entry_id"])
