"""Durable alert store on a real SQLite file and a real PostgreSQL server.

Every store test runs twice, on ``sqlite+aiosqlite`` in a temporary file and on
PostgreSQL at 127.0.0.1:5432 (override with ``RISKWATCH_TEST_PG_URL``) in a throwaway
database ``rw_test_<random>`` created for this module and dropped after it.  Without a
reachable PostgreSQL the second variant is skipped with the reason, unless
``RISKWATCH_REQUIRE_SERVICES=1`` demands the real server, in which case it fails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from alerting.manager import AlertManager
from alerting.migrate import VERSION_TABLE
from alerting.models import Alert, Condition, Subject, fingerprint
from alerting.store import AlertQuery, AlertStore, alerting_metadata

T0 = 1_795_478_400.0  # 2026-11-24T08:00:00+08:00
T = TypeVar("T")

REGION_A = ("370000", "370800", "370829", "370829101")
REGION_B = ("370000", "370800", "370830", "370830102")
REGION_C = ("440000", "440300", "440305", "440305001")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:  # the PostgreSQL database is shared by the module
        await conn.run_sync(alerting_metadata.drop_all)
        await conn.execute(sa.text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))  # so it migrates
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def store(engine: AsyncEngine) -> AlertStore:
    store = AlertStore(engine)
    await store.create_schema()
    return store


# --- data ---------------------------------------------------------------------------------

def subject(enterprise_id: str = "E1", region: tuple[str, ...] = REGION_A,
            device_id: str | None = "DC1", point: str | None = "dp") -> Subject:
    return Subject(
        enterprise_id=enterprise_id, enterprise_name=f"{enterprise_id} 某某金属制品有限公司",
        industry="dust", region=region, timezone="Asia/Shanghai", device_id=device_id,
        device_kind=None if device_id is None else "dust_collector", point=point,
        point_kind=None if point is None else "differential_pressure",
        unit=None if point is None else "Pa",
    )


def make_alert(alert_id: str, *, who: Subject | None = None, kind: str = "threshold",
               level: int = 3, state: str = "firing", started: float = T0,
               detected: float | None = None, resolved: float | None = None) -> Alert:
    who = who or subject()
    detected = started + 10 if detected is None else detected
    return Alert(
        id=alert_id,
        fingerprint=fingerprint(kind, who.enterprise_id, who.device_id, who.point),
        kind=kind, subject=who, level=level, state=state, started_at=started,
        detected_at=detected, resolved_at=resolved,
        updated_at=detected if resolved is None else resolved,
        title=f"【黄色预警】{who.enterprise_name} {alert_id}",
        evidence={"rule": kind, "value": 1650.5, "limits": {"hi": 1500, "lo": None},
                  "window": [[T0, 1600.0], [T0 + 10, 1650.5]], "note": "压差超上限"},
    )


@pytest.fixture
def catalogue() -> dict[str, Alert]:
    """Five alerts spread over enterprises, regions, kinds, levels, states and time."""
    alerts = [
        make_alert("A", who=subject("E1"), level=3, started=T0),
        make_alert("B", who=subject("E1"), kind="device_offline", level=3, state="resolved",
                   started=T0 + 100, resolved=T0 + 200),
        make_alert("C", who=subject("E2", REGION_B), level=2, state="resolved",
                   started=T0 + 300, resolved=T0 + 400),
        make_alert("D", who=subject("E3", REGION_C, None, None), kind="hidden_operation",
                   level=1, started=T0 + 500),
        make_alert("E", who=subject("E2", REGION_B), kind="flatline", level=4,
                   state="acknowledged", started=T0 + 50),
    ]
    return {alert.id: alert for alert in alerts}


async def ids(store: AlertStore, **filters: Any) -> list[str]:
    return [alert.id for alert in await store.query(AlertQuery(**filters))]


# --- save / get / upsert ------------------------------------------------------------------

async def test_save_then_get_returns_an_equal_alert(store: AlertStore) -> None:
    alert = make_alert("A", started=T0 + 0.125, detected=T0 + 10.5)

    await store.save([alert])

    assert await store.get("A") == alert


async def test_get_unknown_id_is_none(store: AlertStore) -> None:
    assert await store.get("nope") is None


async def test_save_nothing_is_a_no_op(store: AlertStore) -> None:
    await store.save([])

    assert await store.count(AlertQuery()) == 0


async def test_save_upserts_by_id(store: AlertStore) -> None:
    fired = make_alert("A")
    await store.save([fired])

    resolved = replace(fired, state="resolved", resolved_at=T0 + 60, updated_at=T0 + 60,
                       level=2, evidence={**fired.evidence, "resolution": {"cleared_by": 1}})
    await store.save([resolved])
    await store.save([resolved])

    assert await store.get("A") == resolved
    assert await store.count(AlertQuery()) == 1


async def test_later_duplicate_in_one_batch_wins(store: AlertStore) -> None:
    fired = make_alert("A")
    resolved = replace(fired, state="resolved", resolved_at=T0 + 60, updated_at=T0 + 60)

    await store.save([fired, resolved])

    assert await store.get("A") == resolved


async def test_save_is_all_or_nothing(store: AlertStore) -> None:
    good = make_alert("good")
    bad = replace(make_alert("bad"), title=None)  # type: ignore[arg-type]  # NOT NULL

    with pytest.raises(sa.exc.IntegrityError):
        await store.save([good, bad])

    assert await store.get("good") is None


async def test_evidence_is_stored_as_plain_json_on_every_database(store: AlertStore) -> None:
    odd = {"value": float("nan"), "limit": float("inf"), "window": (1.5, 2), "n": np.int32(3),
           "x": np.float32(0.5)}
    await store.save([replace(make_alert("A"), evidence=odd)])

    stored = await store.get("A")

    assert stored is not None
    assert stored.evidence == {"value": None, "limit": None, "window": [1.5, 2], "n": 3,
                               "x": 0.5}


async def test_unserialisable_evidence_is_refused_before_writing(store: AlertStore) -> None:
    with pytest.raises(ValueError, match="evidence of alert bad is not JSON"):
        await store.save([make_alert("good"), replace(make_alert("bad"),
                                                      evidence={"obj": object()})])

    assert await store.get("good") is None


async def test_region_codes_may_not_contain_the_path_separator(store: AlertStore) -> None:
    with pytest.raises(ValueError, match="region code"):
        await store.save([make_alert("A", who=subject(region=("37|0000",)))])


# --- query filters ------------------------------------------------------------------------

async def test_query_without_filters_lists_newest_detected_first(
        store: AlertStore, catalogue: dict[str, Alert]) -> None:
    await store.save(list(catalogue.values()))

    assert await ids(store) == ["D", "C", "B", "E", "A"]


async def test_filter_by_enterprise(store: AlertStore, catalogue: dict[str, Alert]) -> None:
    await store.save(list(catalogue.values()))

    assert await ids(store, enterprise_id="E1") == ["B", "A"]
    assert await ids(store, enterprise_id="E2") == ["C", "E"]
    assert await ids(store, enterprise_id="E9") == []


async def test_filter_by_region_at_any_level(store: AlertStore,
                                             catalogue: dict[str, Alert]) -> None:
    await store.save(list(catalogue.values()))

    assert await ids(store, region="370000") == ["C", "B", "E", "A"]  # province
    assert await ids(store, region="370800") == ["C", "B", "E", "A"]  # city
    assert await ids(store, region="370830") == ["C", "E"]  # county
    assert await ids(store, region="370829101") == ["B", "A"]  # town
    assert await ids(store, region="440305001") == ["D"]
    assert await ids(store, region="3708") == [], "a prefix of a code is not a code"
    assert await ids(store, region="%") == [], "LIKE wildcards are matched literally"


async def test_filter_by_kind_level_and_state(store: AlertStore,
                                              catalogue: dict[str, Alert]) -> None:
    await store.save(list(catalogue.values()))

    assert await ids(store, kind="threshold") == ["C", "A"]
    assert await ids(store, kind="hidden_operation") == ["D"]
    assert await ids(store, level=3) == ["B", "A"]
    assert await ids(store, level=1) == ["D"]
    assert await ids(store, state="firing") == ["D", "A"]
    assert await ids(store, state="acknowledged") == ["E"]
    assert await ids(store, state="resolved") == ["C", "B"]
    assert await ids(store, state="closed") == []


async def test_filters_combine(store: AlertStore, catalogue: dict[str, Alert]) -> None:
    await store.save(list(catalogue.values()))

    assert await ids(store, enterprise_id="E2", state="resolved") == ["C"]
    assert await ids(store, region="370000", kind="threshold", level=3) == ["A"]
    assert await store.count(AlertQuery(region="370000", state="resolved")) == 2


async def test_time_range_selects_alerts_active_during_it(
        store: AlertStore, catalogue: dict[str, Alert]) -> None:
    await store.save(list(catalogue.values()))

    # A, E are still open (resolved_at NULL, open-ended); C overlaps; B ended at T0+200
    # (before the range) and D started at T0+500 (after it).
    assert await ids(store, since=T0 + 210, until=T0 + 350) == ["C", "E", "A"]
    assert await ids(store, since=T0 + 450) == ["D", "E", "A"]
    assert await ids(store, until=T0 + 60) == ["E", "A"]
    assert await ids(store, since=T0 + 150, until=T0 + 160) == ["B", "E", "A"]


async def test_time_range_is_half_open(store: AlertStore,
                                       catalogue: dict[str, Alert]) -> None:
    await store.save(list(catalogue.values()))

    assert "D" not in await ids(store, until=T0 + 500), "starts exactly at until"
    assert "D" in await ids(store, until=T0 + 500.001)
    assert "B" not in await ids(store, since=T0 + 200), "resolved exactly at since"
    assert "B" in await ids(store, since=T0 + 199.999)


async def test_pagination_and_count(store: AlertStore) -> None:
    alerts = [make_alert(f"P{n:02d}", started=T0 + n) for n in range(25)]
    await store.save(alerts)

    pages = [await ids(store, limit=10, offset=offset) for offset in (0, 10, 20, 30)]

    assert [len(page) for page in pages] == [10, 10, 5, 0]
    assert [i for page in pages for i in page] == [f"P{n:02d}" for n in reversed(range(25))]
    assert await store.count(AlertQuery(limit=1, offset=5)) == 25


async def test_ties_on_detected_at_page_deterministically(store: AlertStore) -> None:
    await store.save([make_alert(f"S{n}", detected=T0) for n in range(6)])

    first, second = await ids(store, limit=3), await ids(store, limit=3, offset=3)

    assert first + second == ["S5", "S4", "S3", "S2", "S1", "S0"]


@pytest.mark.parametrize(
    "bad",
    [{"level": 0}, {"state": "open"}, {"region": ""}, {"region": "37|08"}, {"limit": 0},
     {"offset": -1}],
)
def test_query_rejects_bad_filters(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        AlertQuery(**bad)


# --- open alerts and restart ----------------------------------------------------------------

async def test_load_open_returns_firing_and_acknowledged(
        store: AlertStore, catalogue: dict[str, Alert]) -> None:
    await store.save(list(catalogue.values()))

    assert [a.id for a in await store.load_open()] == ["A", "E", "D"]
    assert await store.load_open() == [catalogue[i] for i in ("A", "E", "D")]


async def test_dedup_survives_a_restart_through_the_store(store: AlertStore) -> None:
    who = subject()
    evidence = {"rule": "threshold", "band": "hi", "value": 1650.0, "limit": 1500.0}
    firing = Condition(kind="threshold", subject=who, active=True, level=3, started_at=T0,
                       at=T0 + 10, evidence=evidence,
                       detail={"band": "hi", "value": 1650.0, "limit": 1500.0})
    before = AlertManager()
    [fired] = before.apply([firing])
    await store.save([fired])

    after = AlertManager()
    after.restore(await store.load_open())
    assert after.apply([replace(firing, at=T0 + 20)]) == []
    changed = after.apply([replace(firing, active=False, at=T0 + 90, evidence={})])
    await store.save(changed)

    stored = await store.get(fired.id)
    assert stored is not None
    assert (stored.state, stored.resolved_at) == ("resolved", T0 + 90)
    assert await store.load_open() == []


# --- JSON (CONTRACT.md §4) -------------------------------------------------------------------

CONTRACT_KEYS = {"id", "enterprise_id", "device_id", "point", "kind", "level", "state",
                 "started_at", "detected_at", "resolved_at", "title", "evidence"}


def test_to_json_has_the_contract_shape() -> None:
    alert = make_alert("A", started=T0, detected=T0 + 10.25, resolved=T0 + 3600)

    data = alert.to_json()

    assert set(data) >= CONTRACT_KEYS
    assert data["enterprise_id"] == "E1"
    assert (data["device_id"], data["point"]) == ("DC1", "dp")
    assert data["started_at"] == "2026-11-24T08:00:00+08:00"
    assert data["detected_at"] == "2026-11-24T08:00:10.250+08:00"
    assert data["resolved_at"] == "2026-11-24T09:00:00+08:00"
    assert data["updated_at"] == "2026-11-24T09:00:00+08:00"
    assert data["level"] == 3
    assert data["level_color"] == "yellow"
    assert data["region"] == list(REGION_A)
    assert data["fingerprint"] == alert.fingerprint
    assert (data["enterprise_name"], data["industry"]) == ("E1 某某金属制品有限公司", "dust")


def test_to_json_of_an_enterprise_level_open_alert() -> None:
    data = make_alert("D", who=subject("E3", REGION_C, None, None),
                      kind="hidden_operation").to_json()

    assert (data["device_id"], data["point"], data["resolved_at"]) == (None, None, None)


def test_from_json_accepts_contract_only_objects() -> None:
    full = make_alert("A").to_json()
    contract_only = {key: full[key] for key in CONTRACT_KEYS}

    alert = Alert.from_json(contract_only)

    assert alert.fingerprint == fingerprint("threshold", "E1", "DC1", "dp")
    assert alert.subject.timezone == "Asia/Shanghai"
    assert alert.started_at == T0


def test_from_json_names_a_missing_key() -> None:
    data = make_alert("A").to_json()
    del data["kind"]

    with pytest.raises(ValueError, match="'kind'"):
        Alert.from_json(data)


async def test_json_round_trip_through_the_store(store: AlertStore,
                                                 catalogue: dict[str, Alert]) -> None:
    await store.save([Alert.from_json(alert.to_json()) for alert in catalogue.values()])

    for alert in catalogue.values():
        stored = await store.get(alert.id)
        assert stored is not None
        assert stored.to_json() == alert.to_json()
        assert Alert.from_json(stored.to_json()) == stored == alert


async def test_store_can_own_its_engine(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'owned.db'}"
    async with AlertStore.connect(url) as store:
        await store.save([make_alert("A")])
    async with AlertStore.connect(url, create_schema=False) as store:
        assert await store.get("A") == make_alert("A")
