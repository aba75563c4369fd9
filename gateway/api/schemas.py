"""Response bodies of the read routes, and the error responses every route may give.

They exist for the OpenAPI document (integrators generate clients from it) and to keep
the bodies stable: FastAPI validates each answer against its model.  Models of objects
that carry open-ended parts (an alert's evidence, a device's status) allow extra keys,
so adding a field never breaks a response.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.api.handling import AlertBody, ErrorBody


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class AlertList(BaseModel):
    items: list[AlertBody]
    total: int
    limit: int
    offset: int


class DeviceBody(_Open):
    id: str
    kind: str
    role: str | None = None
    expected_interval_s: float
    points: list[str]
    last_seen: str | None = Field(description="RFC 3339 UTC; null before any data")
    silent: bool
    status: dict[str, Any] | None = Field(description="The device's own last status "
                                          "message: online, ts, reason")


class PlantStateBody(BaseModel):
    state: str = Field(description="off, standby or production: the busiest meter's")
    at: str = Field(description="When that meter was last read (RFC 3339 UTC)")


class EnterpriseBody(_Open):
    id: str
    name: str
    industry: str
    region: list[str]
    timezone: str
    declared: list[dict[str, Any]] = Field(description="Declared periods in force: the "
                                           "registry's and those made through the API")
    plant_state: PlantStateBody | None
    supervisors: list[str]
    open_alerts: int
    devices: list[DeviceBody]


class EnterpriseList(BaseModel):
    items: list[EnterpriseBody]
    total: int
    limit: int
    offset: int


class QuarantineBody(_Open):
    reason: str
    detail: str
    topic: str
    enterprise_id: str | None
    device_id: str | None
    received_at: str
    payload: str
    payload_encoding: str = Field(description="utf-8, or base64 for binary payloads")


class QuarantineList(BaseModel):
    items: list[QuarantineBody]
    total: int
    limit: int
    offset: int


class SeriesBody(_Open):
    device_id: str
    point: str
    unit: str | None
    point_kind: str | None
    limits: dict[str, float | None] | None
    t: list[int] = Field(description="Epoch milliseconds")


class SeriesResponse(BaseModel):
    enterprise_id: str
    resolution_s: int = Field(description="60 for minute aggregates (min, mean, max, "
                              "last, count per minute), 0 for raw samples (value)")
    series: list[SeriesBody]


class HealthBody(_Open):
    status: str = Field(description="ok, or degraded (503)")
    database: str
    mqtt: dict[str, Any]
    uptime_s: float


def auth_errors(*extra: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of a route that needs a login: 401, 403 and ``extra``."""
    text = {401: "Not logged in, or the session ended (unauthenticated)",
            403: "The role may not do this, or a filter lies outside the caller's area",
            404: "Not found, or outside the caller's area"}
    return {code: {"model": ErrorBody, "description": text[code]}
            for code in (401, 403, *extra)}
