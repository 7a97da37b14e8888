"""Flags: kind ``label_conflict`` (copies labelled differently) and status ``closed`` (problem gone).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = "kind IN ('exact_duplicate', 'near_duplicate', 'outlier', 'label_issue', 'box_issue')"
NEW_KINDS = "kind IN ('exact_duplicate', 'near_duplicate', 'outlier', 'label_issue', 'box_issue', 'label_conflict')"
OLD_STATUSES = "status IN ('open', 'accepted', 'dismissed')"
NEW_STATUSES = "status IN ('open', 'accepted', 'dismissed', 'closed')"


def _swap(kinds: str, statuses: str) -> None:
    # Batch mode: SQLite cannot alter a CHECK constraint, so the table is copied (PostgreSQL alters in place).
    with op.batch_alter_table("flags") as batch:
        batch.drop_constraint(op.f("ck_flags_kind"), type_="check")
        batch.drop_constraint(op.f("ck_flags_status"), type_="check")
        batch.create_check_constraint("kind", kinds)
        batch.create_check_constraint("status", statuses)


def upgrade() -> None:
    _swap(NEW_KINDS, NEW_STATUSES)


def downgrade() -> None:
    op.execute("DELETE FROM flags WHERE kind = 'label_conflict'")
    op.execute("UPDATE flags SET status = 'open' WHERE status = 'closed'")
    _swap(OLD_KINDS, OLD_STATUSES)
