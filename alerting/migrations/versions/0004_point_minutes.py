"""History of every point for the dashboard: one-minute aggregates.

Revision ID: 0004_point_minutes
Revises: 0003_users
Create Date: 2026-12-05

A new table only, nothing existing changes.  Times are epoch milliseconds in BIGINT
columns like everywhere else in the schema.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_point_minutes"
down_revision: str | None = "0003_users"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "point_minutes",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("point", sa.String(64), nullable=False),
        sa.Column("minute_start", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("enterprise_id", sa.String(64), nullable=False),
        sa.Column("min", sa.Float, nullable=False),
        sa.Column("mean", sa.Float, nullable=False),
        sa.Column("max", sa.Float, nullable=False),
        sa.Column("last", sa.Float, nullable=False),
        sa.Column("last_at", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "point", "minute_start"),
    )
    op.create_index("ix_point_minutes_enterprise_id_minute_start", "point_minutes",
                    ["enterprise_id", "minute_start"])


def downgrade() -> None:
    op.drop_index("ix_point_minutes_enterprise_id_minute_start", table_name="point_minutes")
    op.drop_table("point_minutes")
