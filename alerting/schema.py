"""Tables of the alerting store: the schema at the newest migration, in one place.

The migrations in ``alerting/migrations/versions`` create and change these tables; this
module describes where they end up, for queries and for the test that compares it with a
migrated database (so migrations and models cannot drift apart).  Nothing here touches a
database: call :func:`alerting.migrate.migrate` to bring one up to date.

Conventions, the same in every table:

- times are epoch milliseconds in ``BIGINT`` columns: integer range predicates behave
  the same on SQLite and PostgreSQL, unlike their timestamp types;
- JSON columns hold plain JSON values (dicts, lists, strings, numbers) and nothing that
  the two databases would read back differently;
- index names are SQLAlchemy's defaults (``ix_<table>_<column>``), which is what the
  ``create_all`` era produced, so old databases and migrated ones look alike.

The tables live on :data:`alerting_metadata`, not on a shared ``MetaData``, so other
packages (the gateway's quarantine store) keep theirs and neither drops the other's
tables.
"""

from __future__ import annotations

import sqlalchemy as sa

alerting_metadata = sa.MetaData()
"""Schema (not state) of the alerting tables at the head migration."""

STAGES = ("pending", "acknowledged", "dispatched", "feedback", "verified", "closed")
"""Handling workflow of an alert (推送 → 核实处置 → 反馈 → 核查 → 销号), column ``alerts.stage``."""

OUTBOX_STATES = ("pending", "sent", "dead", "muted")
"""States of a row of the notification outbox, column ``notifications.state``."""

# Surrogate keys: BIGINT on PostgreSQL, but INTEGER on SQLite, where only an
# ``INTEGER PRIMARY KEY`` column is an alias of the rowid and autoincrements.
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

alerts_table = sa.Table(
    "alerts",
    alerting_metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("fingerprint", sa.String(32), nullable=False, index=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("level", sa.SmallInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("enterprise_id", sa.String(64), nullable=False, index=True),
    sa.Column("enterprise_name", sa.Text, nullable=False),
    sa.Column("industry", sa.String(32), nullable=False),
    sa.Column("region_path", sa.String(255), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("device_id", sa.String(64)),
    sa.Column("device_kind", sa.String(64)),
    sa.Column("point", sa.String(64)),
    sa.Column("point_kind", sa.String(64)),
    sa.Column("unit", sa.String(32)),
    sa.Column("started_at", sa.BigInteger, nullable=False),
    sa.Column("detected_at", sa.BigInteger, nullable=False, index=True),
    sa.Column("resolved_at", sa.BigInteger),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    # 0002: the handling workflow, kept apart from ``state`` (the detector's view:
    # firing/resolved) because a resolved alert may still await feedback and closing.
    sa.Column("stage", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("assignee", sa.String(128)),
    sa.Column("flapping", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reopen_count", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("acknowledged_at", sa.BigInteger),
    sa.Column("closed_at", sa.BigInteger),
)
"""One row per alert, keyed by its deterministic id (CONTRACT.md §4)."""

alert_events_table = sa.Table(
    "alert_events",
    alerting_metadata,
    sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64)),
    sa.Column("alert_id", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("from_stage", sa.String(16)),
    sa.Column("to_stage", sa.String(16)),
    sa.Column("comment", sa.Text),
    sa.Column("data", sa.JSON, nullable=False),
    sa.UniqueConstraint("key", name="uq_alert_events_key"),
)
"""Audit trail of an alert's handling, append-only.  ``key`` is set on events the
system makes (a deterministic key, so replaying a recording twice records them once)
and ``NULL`` on operators' actions, which are never deduplicated."""

notifications_table = sa.Table(
    "notifications",
    alerting_metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("alert_ids", sa.JSON, nullable=False),
    sa.Column("enterprise_id", sa.String(64), nullable=False, index=True),
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
    sa.Column("first_attempt_at", sa.BigInteger),
    sa.Column("lease_until", sa.BigInteger),
    sa.Column("last_error", sa.Text),
    sa.Column("sent_at", sa.BigInteger),
    sa.Index("ix_notifications_state_next_attempt_at", "state", "next_attempt_at"),
)
"""The outbox: every notification is written here before it is sent, keyed by its
idempotency key.  ``created_at`` is the engine's event time (part of the message);
``next_attempt_at``, ``first_attempt_at``, ``lease_until`` and ``sent_at`` are the
dispatcher's clock.  See :mod:`alerting.outbox`."""

silences_table = sa.Table(
    "silences",
    alerting_metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("matchers", sa.JSON, nullable=False),
    sa.Column("starts_at", sa.BigInteger, nullable=False),
    sa.Column("ends_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expired_by", sa.String(128)),
)
"""Silences: matchers over alert labels and a time window; a silenced notification is
still written to the outbox, in state ``muted``.  ``expired_by`` names the operator
who ended one by hand before ``ends_at``; ``NULL`` while it runs its course."""

# 0003: access control.  The service has one database and one migration chain, so the
# gateway's users and sessions are described here too; ``gateway/auth`` owns their use.

ROLES = ("admin", "county", "town", "enterprise")
"""Who a user is, column ``users.role``: see :mod:`gateway.auth.principal`."""

users_table = sa.Table(
    "users",
    alerting_metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("display_name", sa.String(128), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("scope", sa.String(64)),
    sa.Column("locale", sa.String(8), nullable=False, server_default="zh"),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
"""People who log in.  ``scope`` is the county (6-digit) or town (9-digit) region code
of a county or town user, the enterprise id of an enterprise user, ``NULL`` for an
admin.  ``password_hash`` is an Argon2id PHC string, never the password."""

sessions_table = sa.Table(
    "api_sessions",
    alerting_metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(64), sa.ForeignKey("users.username", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
)
"""Login sessions.  Only the SHA-256 of a token is stored: a copy of the database does
not let anyone log in, and a token is revoked by deleting its row."""

# 0004: the dashboard's history.  Written by ``gateway/storage/point_minutes.py``.

point_minutes_table = sa.Table(
    "point_minutes",
    alerting_metadata,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("point", sa.String(64), primary_key=True),
    sa.Column("minute_start", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("enterprise_id", sa.String(64), nullable=False),
    sa.Column("min", sa.Float, nullable=False),
    sa.Column("mean", sa.Float, nullable=False),
    sa.Column("max", sa.Float, nullable=False),
    sa.Column("last", sa.Float, nullable=False),
    sa.Column("last_at", sa.BigInteger, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Index("ix_point_minutes_enterprise_id_minute_start", "enterprise_id", "minute_start"),
    sa.Index("ix_point_minutes_minute_start", "minute_start"),
)
"""One row per point and minute of event time: min, mean, max and last (the value at
``last_at``) of the ``count`` samples received for it.  Device ids are unique across
the registry, so (device, point, minute) is the key; enterprise-wide range reads use
the second index, the retention's deletes of the oldest minutes the third (0006).
Late samples merge into their row (upsert), see :mod:`gateway.storage.aggregates`."""

# 0005: production status declared through the API (停产 periods), besides the registry's.

declared_periods_table = sa.Table(
    "declared_periods",
    alerting_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("enterprise_id", sa.String(64), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("from_ms", sa.BigInteger, nullable=False),
    sa.Column("to_ms", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("withdrawn_by", sa.String(128)),
    sa.Column("withdrawn_at", sa.BigInteger),
)
"""A declared production status (``stopped``: 停产, the hidden-operation rule's premise)
of an enterprise for a period.  Withdrawn periods are kept with who withdrew them: a
declaration is a regulatory statement, and a withdrawn one may itself be evidence."""
