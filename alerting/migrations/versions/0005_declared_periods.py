"""Production status declared through the API (停产 periods).

Revision ID: 0005_declared_periods
Revises: 0004_point_minutes
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_declared_periods"
down_revision: str | None = "0004_point_minutes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "declared_periods",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("enterprise_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("from_ms", sa.BigInteger, nullable=False),
        sa.Column("to_ms", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("withdrawn_by", sa.String(128)),
        sa.Column("withdrawn_at", sa.BigInteger),
    )
    op.create_index("ix_declared_periods_enterprise_id", "declared_periods",
                    ["enterprise_id"])


def downgrade() -> None:
    op.drop_index("ix_declared_periods_enterprise_id", table_name="declared_periods")
    op.drop_table("declared_periods")
