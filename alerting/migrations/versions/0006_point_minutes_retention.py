"""An index on ``point_minutes.minute_start``, for the history retention's deletes.

Without it, deleting the oldest minutes scans the whole table (hundreds of millions of
rows for a fleet kept a month); with it, each step is a range of the index.

Revision ID: 0006_point_minutes_retention
Revises: 0005_declared_periods
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006_point_minutes_retention"
down_revision: str | None = "0005_declared_periods"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_point_minutes_minute_start", "point_minutes", ["minute_start"])


def downgrade() -> None:
    op.drop_index("ix_point_minutes_minute_start", table_name="point_minutes")
