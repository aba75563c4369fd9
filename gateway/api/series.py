"""``GET /api/v1/enterprises/{enterprise_id}/series``: the history of every point, for
the dashboard's charts.

Two resolutions:

- ``1m`` (default): one-minute aggregates from the ``point_minutes`` table
  (:mod:`gateway.storage.point_minutes`), completed with the minutes still open in
  memory (not yet written, or late samples not yet merged), so the newest minutes
  show at once.  Each series has ``t`` (minute start, epoch ms), ``min``, ``mean``,
  ``max``, ``last`` and ``count`` (samples in the minute), all of the same length.
- ``raw``: the samples themselves, from the in-memory window of each point (the last
  :data:`~gateway.storage.history.RAW_DEPTH` samples; older ones are only in the
  minutes).  Each series has ``t`` (sample time, epoch ms) and ``value`` only; a value
  the device sent as non-finite is ``null``.

Every point of the enterprise (or of the ``device``/``point`` filter) has a series,
empty when nothing is known in the range, so a chart can list the points it has no
data for.  ``since``/``until`` take RFC 3339 with an offset or epoch ms like the other
routes; the default is the 6 hours up to now, at most :data:`MAX_RANGE_S` per request.
``resolution_s`` in the answer is 60 or 0 (raw).

Errors have the API's shape ``{"error": <code>, "detail": <message>}``: 404
``enterprise_not_found``, ``device_not_found``, ``point_not_found``; 422
``invalid_time``, ``range_too_long``.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Annotated, Any, Literal, Protocol

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.api.access import Access, ApiError
from gateway.api.schemas import SeriesResponse
from gateway.auth.principal import Principal
from gateway.ingest.timestamps import TimestampError, TimestampParser
from gateway.pipeline import Pipeline
from gateway.registry import Registry, RegistryIndex
from gateway.storage.aggregates import MINUTE_S, MinuteRows
from gateway.storage.history import PointHistory
from gateway.storage.point_minutes import MinuteSeries, PointMinuteStore

DEFAULT_RANGE_S = 6 * 3600.0
MAX_RANGE_S = 7 * 86_400.0
"""Longest range of one request: a week of minutes is 10,080 values per series."""

Resolution = Literal["1m", "raw"]


class SeriesContext(Protocol):
    """What the routes read; :class:`gateway.api.app.ApiContext` has it.  A ``history``
    attribute (a :class:`PointHistory`), when the context has one, supplies the open
    minutes and the raw windows."""

    @property
    def registry(self) -> Registry: ...

    @property
    def engine(self) -> AsyncEngine: ...

    @property
    def pipeline(self) -> Pipeline: ...


def series_router(ctx: SeriesContext, *, access: Access | None = None,
                  history: PointHistory | None = None) -> APIRouter:
    """Routes of the points' history.  ``history``: the service's
    :class:`PointHistory` (default: ``ctx.history`` if the context has one).  Without
    one, ``1m`` reads the table only and ``raw`` the pipeline's 16-sample evidence
    windows.  ``access``: who may read which enterprise (the app always gives it; only
    the router's own unit tests mount it without)."""
    router = APIRouter(tags=["history"])

    async def caller(request: Request) -> Principal | None:
        return None if access is None else await access.user(request)
    store = PointMinuteStore(ctx.engine)
    parser = TimestampParser()

    def current_history() -> PointHistory | None:
        if history is not None:
            return history
        found = getattr(ctx, "history", None)
        return found if isinstance(found, PointHistory) else None

    @router.get("/api/v1/enterprises/{enterprise_id}/series", response_model=SeriesResponse)
    async def get_series(
        enterprise_id: str,
        principal: Principal | None = Depends(caller),
        since: Annotated[str | None, Query(description="RFC 3339 or epoch ms")] = None,
        until: Annotated[str | None, Query(description="RFC 3339 or epoch ms")] = None,
        device: Annotated[str | None, Query(description="Only this device")] = None,
        point: Annotated[str | None, Query(description="Only points of this name")] = None,
        resolution: Resolution = "1m",
    ) -> dict[str, Any]:
        """Each point's history in ``[since, until)``: minute aggregates or raw samples."""
        if access is not None:
            assert principal is not None
            access.enterprise_or_404(principal, enterprise_id)  # outside the area: 404
        index = ctx.registry.index
        enterprise = index.enterprise_index.get(enterprise_id)
        if enterprise is None:
            raise ApiError(404, "enterprise_not_found",
                           f"no enterprise {enterprise_id!r} in the registry")
        start, end = _range(parser, since, until)
        points = _points(index, enterprise, device, point)
        kept = current_history()
        if resolution == "raw":
            window = kept.raw if kept is not None else ctx.pipeline.window
            series = [_describe(index, p) | _raw(window.samples(p), start, end)
                      for p in points]
        else:
            first_ms = int(start // MINUTE_S * MINUTE_S * 1000)
            end_ms = math.ceil(end * 1000)
            stored = await store.query(enterprise_id, first_ms, end_ms,
                                       device_id=device, point=point)
            open_rows = _open_rows(kept, points, first_ms, end_ms)
            series = []
            for p in points:
                key = (index.device_ids[index.point_device[p]], index.point_names[p])
                minutes = _merged(stored.get(key), open_rows.get(p))
                series.append(_describe(index, p) | _minutes_json(minutes))
        return {"enterprise_id": enterprise_id,
                "resolution_s": 0 if resolution == "raw" else MINUTE_S,
                "series": series}

    return router


def _range(parser: TimestampParser, since: str | None, until: str | None
           ) -> tuple[float, float]:
    def parse(name: str, raw: str | None) -> float | None:
        if raw is None:
            return None
        value: object = int(raw) if raw.lstrip("-").isdigit() else raw
        try:
            return parser.parse(value)
        except TimestampError as exc:
            raise ApiError(422, "invalid_time", f"{name}: {exc}") from None

    end = parse("until", until)
    start = parse("since", since)
    if end is None:
        end = time.time() if start is None else max(time.time(), start + 1)
    if start is None:
        start = end - DEFAULT_RANGE_S
    if start >= end:
        raise ApiError(422, "invalid_time", "since must be before until")
    if end - start > MAX_RANGE_S:
        raise ApiError(422, "range_too_long",
                       f"at most {MAX_RANGE_S / 86_400:g} days per request")
    return start, end


def _points(index: RegistryIndex, enterprise: int, device: str | None,
            point: str | None) -> list[int]:
    """Dense ids of the enterprise's points that match the filters, registry order."""
    if device is not None:
        number = index.device_index.get(device)
        if number is None or int(index.device_enterprise[number]) != enterprise:
            raise ApiError(404, "device_not_found",
                           f"no device {device!r} in this enterprise")
        candidates = list(index.device_points[number].values())
    else:
        candidates = np.flatnonzero(index.point_enterprise == enterprise).tolist()
    if point is not None:
        candidates = [p for p in candidates if index.point_names[p] == point]
        if not candidates:
            raise ApiError(404, "point_not_found", f"no point {point!r} here")
    return sorted(candidates)


def _describe(index: RegistryIndex, p: int) -> dict[str, Any]:
    limits = {name: _finite(float(getattr(index, f"point_{name}")[p]))
              for name in ("lolo", "lo", "hi", "hihi")}
    return {
        "device_id": index.device_ids[index.point_device[p]],
        "point": index.point_names[p],
        "unit": index.point_units[p],
        "point_kind": index.point_kinds[p],
        "limits": limits if any(v is not None for v in limits.values()) else None,
    }


def _raw(samples: tuple[list[float], list[float]], start: float, end: float
         ) -> dict[str, Any]:
    pairs = sorted((ts, value) for ts, value in zip(*samples, strict=True)
                   if start <= ts < end)
    return {"t": [round(ts * 1000) for ts, _ in pairs],
            "value": [_finite(value) for _, value in pairs]}


def _open_rows(history: PointHistory | None, points: list[int], first_ms: int,
               end_ms: int) -> dict[int, MinuteRows]:
    """Minutes held in memory for ``points`` in the range, by point."""
    if history is None:
        return {}
    rows = history.minutes.pending()
    start_ms = rows.minute * 1000
    rows = rows.take(np.isin(rows.point, points) & (start_ms >= first_ms)
                     & (start_ms < end_ms))
    if not len(rows):
        return {}
    bounds = np.flatnonzero(np.r_[True, rows.point[1:] != rows.point[:-1], True])
    return {int(rows.point[a]): rows.take(np.arange(a, b))
            for a, b in itertools.pairwise(bounds)}


def _merged(stored: MinuteSeries | None, held: MinuteRows | None) -> MinuteSeries:
    """Stored minutes completed with those held in memory (merged where both have one
    minute, as the store's upsert will merge them)."""
    if held is None:
        return stored or MinuteSeries()
    by_minute: dict[int, list[Any]] = {}
    if stored is not None:
        for i, t in enumerate(stored.t):
            by_minute[t] = [stored.min[i], stored.mean[i] * stored.count[i], stored.max[i],
                            stored.last[i], stored.last_at[i], stored.count[i]]
    for i in range(len(held)):
        t = int(held.minute[i]) * 1000
        new = [float(held.min[i]), float(held.sum[i]), float(held.max[i]),
               float(held.last[i]), round(float(held.last_ts[i]) * 1000), int(held.count[i])]
        old = by_minute.get(t)
        if old is not None:
            newer = new[4] >= old[4]
            new = [min(old[0], new[0]), old[1] + new[1], max(old[2], new[2]),
                   new[3] if newer else old[3], new[4] if newer else old[4], old[5] + new[5]]
        by_minute[t] = new
    out = MinuteSeries()
    for t in sorted(by_minute):
        low, total, high, last, last_at, count = by_minute[t]
        out.t.append(t)
        out.min.append(low)
        out.mean.append(total / count)
        out.max.append(high)
        out.last.append(last)
        out.last_at.append(last_at)
        out.count.append(count)
    return out


def _minutes_json(series: MinuteSeries) -> dict[str, Any]:
    return {"t": series.t, "min": series.min, "mean": series.mean, "max": series.max,
            "last": series.last, "count": series.count}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
