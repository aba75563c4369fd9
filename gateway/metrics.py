"""Prometheus metrics of one service instance, on its own registry (no globals), so
tests and several services in one process never share counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from alerting import Alert
from gateway.ingest.decode import Decoded


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages = Counter("riskwatch_messages_total",
                                "Messages received from the broker or a recording",
                                registry=self.registry)
        self.samples = Counter("riskwatch_samples_total",
                               "Point samples accepted for detection", registry=self.registry)
        self.quarantined = Counter("riskwatch_quarantined_total",
                                   "Messages or parts refused, by reason", ["reason"],
                                   registry=self.registry)
        self.alert_changes = Counter("riskwatch_alert_changes_total",
                                     "Alert lifecycle changes, by kind and state",
                                     ["kind", "state"], registry=self.registry)
        self.open_alerts = Gauge("riskwatch_open_alerts", "Alerts currently firing",
                                 registry=self.registry)
        self.mqtt_connected = Gauge("riskwatch_mqtt_connected",
                                    "1 while subscribed to the broker", registry=self.registry)
        self.watermark = Gauge("riskwatch_watermark_seconds",
                               "Event-time watermark (epoch seconds)", registry=self.registry)
        self.batch_seconds = Histogram(
            "riskwatch_batch_seconds", "Time to run detectors and alerting on one batch",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.store_backlog = Gauge("riskwatch_store_backlog",
                                   "Alert and quarantine writes waiting for the database",
                                   registry=self.registry)
        self.notifications = Counter(
            "riskwatch_notifications_total",
            "Notification send attempts, by channel type and outcome (sent, retry, dead)",
            ["channel", "outcome"], registry=self.registry)

    def observe_decoded(self, decoded: Decoded) -> None:
        self.messages.inc(decoded.messages)
        self.samples.inc(len(decoded.samples))
        for rejection in decoded.rejections:
            self.quarantined.labels(rejection.reason.value).inc()

    def observe_alerts(self, alerts: list[Alert], open_count: int) -> None:
        for alert in alerts:
            self.alert_changes.labels(alert.kind, alert.state).inc()
        self.open_alerts.set(open_count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
