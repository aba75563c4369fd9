"""Alert lifecycle, titles and durable store (DESIGN.md, ``alerting/``).

Conditions from the pipeline go through :class:`AlertManager` (dedup by fingerprint,
firing -> resolved) and the alerts it returns are saved by :class:`AlertStore` and
rendered as CONTRACT.md §4 objects by :meth:`Alert.to_json`.
"""

from alerting.manager import AlertManager
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
from alerting.store import AlertQuery, AlertStore, AlertStoreError, alerting_metadata
from alerting.titles import LOCALES, render_title

__all__ = [
    "ALERT_STATES",
    "LEVEL_COLORS",
    "LOCALES",
    "OPEN_STATES",
    "Alert",
    "AlertManager",
    "AlertQuery",
    "AlertStore",
    "AlertStoreError",
    "Condition",
    "Subject",
    "alert_id",
    "alerting_metadata",
    "fingerprint",
    "render_title",
]
