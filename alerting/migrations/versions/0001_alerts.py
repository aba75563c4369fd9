"""The alerts table as the ``create_all`` era made it.

Revision ID: 0001_alerts
Revises:
Create Date: 2026-11-25

Column for column and index for index what ``alerting_metadata.create_all`` created
before migrations existed, so a database of that era is stamped at this revision
(:func:`alerting.migrate.migrate` does it) and upgraded like any other.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_alerts"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXED = ("fingerprint", "state", "enterprise_id", "detected_at")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("enterprise_id", sa.String(64), nullable=False),
        sa.Column("enterprise_name", sa.Text, nullable=False),
        sa.Column("industry", sa.String(32), nullable=False),
        sa.Column("region_path", sa.String(255), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=True),
        sa.Column("device_kind", sa.String(64), nullable=True),
        sa.Column("point", sa.String(64), nullable=True),
        sa.Column("point_kind", sa.String(64), nullable=True),
        sa.Column("unit", sa.String(32), nullable=True),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("detected_at", sa.BigInteger, nullable=False),
        sa.Column("resolved_at", sa.BigInteger, nullable=True),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in _INDEXED:
        op.create_index(f"ix_alerts_{column}", "alerts", [column])


def downgrade() -> None:
    for column in _INDEXED:
        op.drop_index(f"ix_alerts_{column}", table_name="alerts")
    op.drop_table("alerts")
