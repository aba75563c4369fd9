"""Alert lifecycle, titles and durable store (DESIGN.md, ``alerting/``).

Conditions from the pipeline go through :class:`AlertManager` (dedup by fingerprint,
firing -> resolved) and the alerts it returns are saved by :class:`AlertStore` and
rendered as CONTRACT.md §4 objects by :meth:`Alert.to_json`.  People handle them through
:class:`HandlingStore` (workflow actions with their audit trail) and mute their
notifications with silences kept by :class:`SilenceStore`.  Notifications are written
to the :class:`Outbox` before anything is sent and sent by a :class:`Dispatcher`; the
tables are in :mod:`alerting.schema` and migrated by :mod:`alerting.migrate`.
"""

from alerting.dispatcher import Dispatcher, RetryPolicy
from alerting.handling_store import AlertNotFound, HandlingStore
from alerting.manager import AlertManager
from alerting.migrate import MigrationError
from alerting.models import (
    ALERT_STATES,
    LEVEL_COLORS,
    OPEN_STATES,
    Alert,
    Condition,
    Subject,
    alert_id,
    fingerprint,
)
from alerting.outbox import Outbox, OutboxEntry
from alerting.silence_store import SilenceNotFound, SilenceStore
from alerting.store import (
    AlertQuery,
    AlertStore,
    AlertStoreError,
    alerting_metadata,
    alerts_table,
)
from alerting.titles import LOCALES, render_title

__all__ = [
    "ALERT_STATES",
    "LEVEL_COLORS",
    "LOCALES",
    "OPEN_STATES",
    "Alert",
    "AlertManager",
    "AlertNotFound",
    "AlertQuery",
    "AlertStore",
    "AlertStoreError",
    "Condition",
    "Dispatcher",
    "HandlingStore",
    "MigrationError",
    "Outbox",
    "OutboxEntry",
    "RetryPolicy",
    "SilenceNotFound",
    "SilenceStore",
    "Subject",
    "alert_id",
    "alerting_metadata",
    "alerts_table",
    "fingerprint",
    "render_title",
]
