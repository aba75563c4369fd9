"""Ground truth: what a scenario injected, where and when (CONTRACT.md §3 ``labels.jsonl``).

The contract fields are ``enterprise_id``, ``device_id`` (null for site-level events),
``kind`` (the alert kind a correct service raises) and ``start``/``end``.  Optional
extensions, which readers of the contract may ignore:

* ``scenario``: the named scenario that produced it, e.g. ``hidden_operation.night_only``;
* ``negative``: ``true`` for a hard negative, an interval in which an alert of ``kind``
  would be *wrong* (a genuine power outage must not raise ``fake_offline``);
* ``point``: the point concerned, for per-point kinds such as ``threshold``.

Times are written as RFC 3339 with the site's offset and read as RFC 3339 or epoch ms.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True, slots=True)
class Label:
    enterprise_id: str
    device_id: str | None
    kind: str
    start: float
    """Epoch seconds, inclusive."""
    end: float
    """Epoch seconds, exclusive; ``end > start``."""
    scenario: str | None = None
    negative: bool = False
    point: str | None = None

    def __post_init__(self) -> None:
        if not self.end > self.start:
            raise ValueError(f"label {self.kind} of {self.enterprise_id} ends before it starts")

    def to_json(self, tz: timezone = CHINA) -> dict[str, Any]:
        body: dict[str, Any] = {
            "enterprise_id": self.enterprise_id,
            "device_id": self.device_id,
            "kind": self.kind,
            "start": _rfc3339(self.start, tz),
            "end": _rfc3339(self.end, tz),
        }
        if self.scenario is not None:
            body["scenario"] = self.scenario
        if self.negative:
            body["negative"] = True
        if self.point is not None:
            body["point"] = self.point
        return body

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Label:
        return cls(
            enterprise_id=str(data["enterprise_id"]),
            device_id=None if data.get("device_id") is None else str(data["device_id"]),
            kind=str(data["kind"]),
            start=parse_time(data["start"]),
            end=parse_time(data["end"]),
            scenario=data.get("scenario"),
            negative=bool(data.get("negative", False)),
            point=data.get("point"),
        )


def parse_time(value: object) -> float:
    """RFC 3339 with offset, or epoch milliseconds (CONTRACT.md), to epoch seconds."""
    if isinstance(value, bool):
        raise ValueError("time must be RFC 3339 text or epoch milliseconds")
    if isinstance(value, int | float):
        return float(value) / 1000.0
    if isinstance(value, str):
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError(f"time {value!r} has no UTC offset")
        return moment.timestamp()
    raise ValueError(f"time must be RFC 3339 text or epoch milliseconds, got {value!r}")


def write_labels(path: Path, labels: Iterable[Label]) -> int:
    """Write labels sorted by (start, enterprise, kind); returns how many."""
    ordered = sorted(labels, key=lambda lb: (lb.start, lb.enterprise_id, lb.kind,
                                             lb.device_id or "", lb.point or ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for label in ordered:
            out.write(orjson.dumps(label.to_json()) + b"\n")
    return len(ordered)


def read_labels(path: Path) -> list[Label]:
    """Read ``labels.jsonl``; a bad line is an error naming the file and line."""
    labels = []
    with path.open("rb") as source:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                labels.append(Label.from_json(orjson.loads(line)))
            except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
                raise ValueError(f"{path}:{number}: not a label: {exc}") from exc
    return labels


def _rfc3339(ts: float, tz: timezone) -> str:
    text = datetime.fromtimestamp(round(ts, 3), tz).isoformat(timespec="milliseconds")
    return text.replace(".000", "")
