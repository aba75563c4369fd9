"""Handling workflow of alerts, their audit trail, the notification outbox, silences.

Revision ID: 0002_lifecycle_outbox
Revises: 0001_alerts
Create Date: 2026-11-25

New ``alerts`` columns are added with server defaults, so existing rows become
``pending``, not flapping, never reopened.  ALTERs go through ``batch_alter_table``:
PostgreSQL runs them as plain ``ALTER TABLE``; SQLite, which cannot drop columns on
every version, gets its table copied when it must be.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_lifecycle_outbox"
down_revision: str | None = "0001_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ALERT_COLUMNS = ("stage", "assignee", "flapping", "reopen_count", "acknowledged_at",
                  "closed_at")


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("stage", sa.String(16), nullable=False,
                                   server_default="pending"))
        batch.add_column(sa.Column("assignee", sa.String(128), nullable=True))
        batch.add_column(sa.Column("flapping", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("reopen_count", sa.Integer, nullable=False,
                                   server_default=sa.text("0")))
        batch.add_column(sa.Column("acknowledged_at", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("closed_at", sa.BigInteger, nullable=True))

    op.create_table(
        "alert_events",
        # INTEGER on SQLite: only an INTEGER PRIMARY KEY autoincrements there.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("key", sa.String(64), nullable=True),
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_stage", sa.String(16), nullable=True),
        sa.Column("to_stage", sa.String(16), nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("data", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", name="uq_alert_events_key"),
    )
    op.create_index("ix_alert_events_alert_id", "alert_events", ["alert_id"])

    op.create_table(
        "notifications",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("alert_ids", sa.JSON, nullable=False),
        sa.Column("enterprise_id", sa.String(64), nullable=False),
        sa.Column("receiver", sa.String(128), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("extra", sa.JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("first_attempt_at", sa.BigInteger, nullable=True),
        sa.Column("lease_until", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("sent_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_notifications_enterprise_id", "notifications", ["enterprise_id"])
    op.create_index("ix_notifications_state_next_attempt_at", "notifications",
                    ["state", "next_attempt_at"])

    op.create_table(
        "silences",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("matchers", sa.JSON, nullable=False),
        sa.Column("starts_at", sa.BigInteger, nullable=False),
        sa.Column("ends_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expired_by", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("silences")
    op.drop_index("ix_notifications_state_next_attempt_at", table_name="notifications")
    op.drop_index("ix_notifications_enterprise_id", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index("ix_alert_events_alert_id", table_name="alert_events")
    op.drop_table("alert_events")
    with op.batch_alter_table("alerts") as batch:
        for column in reversed(_ALERT_COLUMNS):
            batch.drop_column(column)
