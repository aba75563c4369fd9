"""A multi-site suite: registry + contract messages in arrival order + ground truth.

``build_suite`` generates every site with numpy (struct of arrays, one array per point)
and keeps it as arrays; ``Suite.messages`` turns them into CONTRACT.md §1 ``(topic,
payload)`` pairs only while iterating, chunk by chunk, so a 50-site fortnight never
holds millions of dicts.  Same options → the same bytes: every random draw comes from a
``numpy`` generator spawned from ``SeedSequence(seed)``, never the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from gateway.registry.models import RegistrySpec
from simulators.fleet import write_registry
from simulators.impairments import Impairments, impair
from simulators.labels import Label, write_labels
from simulators.scenarios import SCENARIOS, SiteBuild, expand, run_site
from simulators.sites import DeviceSeries, DustSite, EventSeries, MetalSite, SiteModel
from simulators.sites.common import BASE_STEP_S, day_start, local_day, rfc3339_seconds

CHINA = timezone(timedelta(hours=8))
DEFAULT_START = datetime(2026, 11, 2, tzinfo=CHINA)
"""A Monday, 00:00 Asia/Shanghai."""

_COUNTIES = (("370829", "嘉祥"), ("370828", "金乡"), ("370883", "邹城"),
             ("320583", "昆山"), ("330784", "永康"), ("130434", "魏县"))
_DUST_WORDS = ("五金制品", "木业", "铝制品", "家具", "金属抛光", "机械配件")
_METAL_WORDS = ("铸造", "精密铸造", "铸业", "特钢", "有色金属", "机械铸件")
_CHUNK = 65_536
DUST_ONLY = ("dust",)
METAL_ONLY = ("metallurgy",)


@dataclass(frozen=True, slots=True)
class SuiteOptions:
    """What to generate.

    ``sites``: enterprises; ``days``: span; ``scenarios``: names for
    :func:`simulators.scenarios.expand` (``()`` for none); ``seed``; ``start``: aware
    datetime (default :data:`DEFAULT_START`); ``drop_rate``: per-device loss range.
    ``clean_share``: share of sites without scenarios (false-alert baseline).
    ``scenarios_per_site``: scenario instances per carrying site (at least one each).
    ``dust_share``: share of dust sites among the clean ones.  ``stop_share``: share
    of sites honestly declaring a stop (no hidden production).  ``clock_skew_s``,
    ``outages_per_site_day``: see :class:`simulators.impairments.Impairments`.
    """

    sites: int
    days: float
    scenarios: tuple[str, ...] = ("all",)
    seed: int = 0
    start: datetime | None = None
    drop_rate: tuple[float, float] = (0.01, 0.10)
    clock_skew_s: float = 5.0
    outages_per_site_day: float = 0.1
    clean_share: float = 0.3
    scenarios_per_site: float = 1.5
    dust_share: float = 0.5
    stop_share: float = 0.2


@dataclass(slots=True)
class SuiteStats:
    messages: int
    points: int
    seconds: float
    """Wall-clock seconds spent writing."""
    labels: int


@dataclass(slots=True)
class Suite:
    """A generated suite.  ``start``/``end``: epoch seconds of the span."""

    registry: RegistrySpec
    labels: list[Label]
    start: float
    end: float
    sites: list[SiteBuild] = field(repr=False)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(enterprise, scenario) pairs that found no room (too short a span)."""

    _queue: _Queue | None = field(default=None, repr=False)

    def message_count(self) -> int:
        """Messages :meth:`messages` yields."""
        return int(self.queue().arrival.size)

    def queue(self) -> _Queue:
        if self._queue is None:
            self._queue = _Queue.of(self)
        return self._queue

    def messages(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every message of every site in arrival order, deterministically."""
        queue = self.queue()
        for lo in range(0, queue.arrival.size, _CHUNK):
            yield from queue.render(slice(lo, lo + _CHUNK))


def build_suite(options: SuiteOptions) -> Suite:
    """Generate the registry, the data (kept as arrays) and the labels."""
    if options.sites < 1 or options.days <= 0:
        raise ValueError("need at least one site and a positive number of days")
    names = expand(options.scenarios) if options.scenarios else []
    start = (options.start or DEFAULT_START).timestamp()
    end = start + options.days * 86_400.0
    steps = np.arange(int(options.days * 86_400.0 / BASE_STEP_S), dtype=np.float64)
    grid = start + steps * BASE_STEP_S
    root = np.random.SeedSequence(options.seed)
    assign_seed, *site_seeds = root.spawn(options.sites + 1)
    plan = _assign(options, names, np.random.default_rng(assign_seed))
    impair_opts = Impairments(drop_rate=options.drop_rate, clock_skew_s=options.clock_skew_s,
                              outages_per_day=options.outages_per_site_day)
    builds: list[SiteBuild] = []
    skipped: list[tuple[str, str]] = []
    for i, (industry, site_names) in enumerate(plan):
        model_rng, work_rng, scen_rng, sim_rng, imp_rng = (
            np.random.default_rng(s) for s in site_seeds[i].spawn(5))
        county = _COUNTIES[i % len(_COUNTIES)][0]
        eid = f"E{county}{i + 1:03d}"
        model: SiteModel = (DustSite(eid, model_rng) if industry == "dust"
                            else MetalSite(eid, model_rng))
        b = SiteBuild(model=model, start=start, end=end, grid=grid,
                      work=model.work_intervals(start, end, work_rng))
        if not site_names and work_rng.random() < options.stop_share:
            _honest_stop(b, work_rng)
        run_site(b, site_names, scen_rng, sim_rng)
        impair(b, impair_opts, imp_rng)
        skipped += [(eid, n) for n in b.skipped]
        builds.append(b)
    registry = RegistrySpec.model_validate(
        {"enterprises": [_enterprise(i, b) for i, b in enumerate(builds)]})
    labels = [lb for b in builds for lb in b.labels]
    return Suite(registry=registry, labels=labels, start=start, end=end, sites=builds,
                 skipped=skipped)


def write_suite(suite: Suite, recording: Path, labels: Path, registry_out: Path, *,
                progress: Callable[[int, int], None] | None = None) -> SuiteStats:
    """Write the recording (``{"topic", "payload"}`` lines), labels and registry."""
    began = time.perf_counter()
    write_registry(suite.registry, registry_out)
    n_labels = write_labels(labels, suite.labels)
    queue = suite.queue()
    total = int(queue.arrival.size)
    recording.parent.mkdir(parents=True, exist_ok=True)
    dumps = orjson.dumps
    done = points = 0
    with recording.open("wb") as out:
        for lo in range(0, total, _CHUNK):
            lines = []
            for topic, payload in queue.render(slice(lo, lo + _CHUNK)):
                values = payload.get("values")
                if values is not None:
                    points += len(values)
                lines.append(dumps({"topic": topic, "payload": payload}))
            lines.append(b"")
            out.write(b"\n".join(lines))
            done += len(lines) - 1
            if progress is not None:
                progress(done, total)
    return SuiteStats(messages=total, points=points,
                      seconds=time.perf_counter() - began, labels=n_labels)


# -- assignment ---------------------------------------------------------------------------

def _assign(options: SuiteOptions, names: list[str], rng: np.random.Generator
            ) -> list[tuple[str, list[str]]]:
    """Industry and scenario names of each site; every name placed at least once."""
    n = options.sites
    if not names:
        return [(_clean_industry(i, options.dust_share), []) for i in range(n)]
    industries = {SCENARIOS[x].industries for x in names}
    needed = 2 if {DUST_ONLY, METAL_ONLY} <= industries else 1
    carriers = min(n, max(needed, n - round(n * options.clean_share)))
    count = max(len(names), round(carriers * options.scenarios_per_site))
    instances = [names[i % len(names)] for i in range(count)]
    only = {ind: [x for x in instances if SCENARIOS[x].industries == (ind,)]
            for ind in ("dust", "metallurgy")}
    both = [x for x in instances if len(SCENARIOS[x].industries) == 2]
    weight_dust = len(only["dust"]) + 0.5 * len(both)
    n_dust = round(carriers * weight_dust / max(len(instances), 1))
    n_dust = min(max(n_dust, 1 if only["dust"] else 0),
                 carriers - (1 if only["metallurgy"] else 0))
    if carriers == 1 and only["dust"] and only["metallurgy"]:
        raise ValueError("dust-only and metallurgy-only scenarios need at least 2 sites")
    sites: list[tuple[str, list[str]]] = [("dust", []) for _ in range(n_dust)]
    sites += [("metallurgy", []) for _ in range(carriers - n_dust)]
    for ind in ("dust", "metallurgy"):
        own = [s for s in sites if s[0] == ind]
        for j, name in enumerate(only[ind]):
            own[j % len(own)][1].append(name)
    for name in both:
        min(sites, key=lambda s: len(s[1]))[1].append(name)
    sites += [(_clean_industry(i, options.dust_share), []) for i in range(n - carriers)]
    order = rng.permutation(len(sites))
    return [sites[int(i)] for i in order]


def _clean_industry(i: int, dust_share: float) -> str:
    return "dust" if (i * dust_share) % 1.0 < dust_share else "metallurgy"


def _honest_stop(b: SiteBuild, rng: np.random.Generator) -> None:
    first, last = int(local_day(b.start)), int(local_day(b.end - 1.0))
    if last - first < 2:
        return
    d = int(rng.integers(first + 1, last))
    s, e = day_start(d), min(day_start(d + int(rng.integers(1, 5))), b.end)
    b.declared.append((s, e, str(rng.choice(["设备检修停产", "节假日停产", "停产整顿"]))))
    b.busy.append((s, e))


# -- registry -----------------------------------------------------------------------------

def _enterprise(i: int, b: SiteBuild) -> dict[str, Any]:
    county, place = _COUNTIES[i % len(_COUNTIES)]
    town = f"{county}{101 + i % 9:03d}"
    m = b.model
    words = _DUST_WORDS if isinstance(m, DustSite) else _METAL_WORDS
    return {
        "id": m.eid,
        "name": f"{place}县示例{words[i % len(words)]}有限公司{i + 1:03d}",
        "industry": m.industry,
        "region": [county[:2] + "0000", county[:4] + "00", county, town],
        "timezone": "Asia/Shanghai",
        "schedule": {"workdays": list(m.pattern.workdays), "hours": m.pattern.hours_text()},
        "declared": [{"state": "stopped", "from": _iso(s), "to": _iso(e), "reason": reason}
                     for s, e, reason in sorted(b.declared)],
        "devices": m.devices(),
        "supervisors": [f"safety-officer@{m.eid}"],
    }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(round(ts), CHINA).isoformat()


# -- messages -----------------------------------------------------------------------------

@dataclass(slots=True)
class _Queue:
    """All deliverable messages as parallel arrays sorted by arrival.

    ``source`` indexes ``sources``: a device series, an event series or a status series;
    ``row`` is the sample within it.
    """

    sources: list[tuple[str, DeviceSeries | Any, str]]
    source: np.ndarray
    row: np.ndarray
    arrival: np.ndarray

    @classmethod
    def of(cls, suite: Suite) -> _Queue:
        sources: list[tuple[str, Any, str]] = []
        arrivals: list[np.ndarray] = []
        src: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        for b in suite.sites:
            devices = b.devices
            for device_id in sorted(devices):
                s = devices[device_id]
                keep = np.flatnonzero(s.delivered())
                _add(sources, arrivals, src, rows, (b.eid, s, "reading"), s.arrival()[keep],
                     keep)
            for ev in b.events:
                owner = devices[ev.device_id]
                at = np.clip(np.searchsorted(owner.ts, ev.ts, side="right") - 1, 0, None)
                keep = np.flatnonzero(owner.send[at])
                shown = EventSeries(ev.device_id, ev.ts + owner.skew_s, ev.type, ev.zone,
                                    ev.value)
                _add(sources, arrivals, src, rows, (b.eid, shown, "event"), ev.ts[keep] + 0.05,
                     keep)
            for st in b.statuses:
                _add(sources, arrivals, src, rows, (b.eid, st, "status"), st.ts,
                     np.arange(st.ts.size))
        arrival = np.concatenate(arrivals) if arrivals else np.zeros(0)
        source = np.concatenate(src) if src else np.zeros(0, np.int64)
        row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        order = np.lexsort((row, source, arrival))
        return cls(sources, source[order], row[order], arrival[order])

    def render(self, part: slice) -> list[tuple[str, dict[str, Any]]]:
        """Topic and payload dicts of the messages in ``part`` of the arrival order."""
        source, row = self.source[part], self.row[part]
        out: list[Any] = [None] * source.size
        for k in np.unique(source).tolist():
            where = np.flatnonzero(source == k)
            eid, series, what = self.sources[k]
            rendered = _RENDER[what](eid, series, row[where])
            for pos, item in zip(where.tolist(), rendered, strict=True):
                out[pos] = item
        return out


def _add(sources: list[tuple[str, Any, str]], arrivals: list[np.ndarray], src: list[np.ndarray],
         rows: list[np.ndarray], item: tuple[str, Any, str], arrival: np.ndarray,
         row: np.ndarray) -> None:
    if row.size == 0:
        return
    src.append(np.full(row.size, len(sources), dtype=np.int64))
    sources.append(item)
    arrivals.append(np.asarray(arrival, dtype=np.float64))
    rows.append(np.asarray(row, dtype=np.int64))


def _readings(eid: str, s: DeviceSeries, rows: np.ndarray) -> list[tuple[str, dict[str, Any]]]:
    topic = f"rw/v1/{eid}/{s.device_id}/{s.topic}"
    stamps = rfc3339_seconds(s.reported_ts()[rows])
    names = list(s.values)
    columns = []
    for name in names:
        v = np.round(s.values[name][rows], s.decimals[name])
        columns.append(v.astype(np.int64).tolist() if s.decimals[name] == 0 else v.tolist())
    seqs = (rows + 1).tolist()
    out = [(topic, {"ts": t, "seq": q, "values": dict(zip(names, vals, strict=True))})
           for t, q, *vals in zip(stamps, seqs, *columns, strict=True)]
    if s.flag_points:
        for pos in np.flatnonzero(s.stopped[rows]).tolist():
            values = out[pos][1]["values"]
            for name in s.flag_points:
                values[name] = {"v": values[name], "q": "F"}
    return out


def _events(eid: str, ev: Any, rows: np.ndarray) -> list[tuple[str, dict[str, Any]]]:
    topic = f"rw/v1/{eid}/{ev.device_id}/event"
    stamps = rfc3339_seconds(np.round(ev.ts[rows]).astype(np.int64))
    return [(topic, {"ts": t, "type": ev.type, "value": 1, "zone": ev.zone[r]})
            for t, r in zip(stamps, rows.tolist(), strict=True)]


def _statuses(eid: str, st: Any, rows: np.ndarray) -> list[tuple[str, dict[str, Any]]]:
    topic = f"rw/v1/{eid}/{st.device_id}/status"
    stamps = rfc3339_seconds(np.round(st.ts[rows]).astype(np.int64))
    return [(topic, {"ts": t, "online": bool(st.online[r]), "reason": st.reason[r]})
            for t, r in zip(stamps, rows.tolist(), strict=True)]


_RENDER: dict[str, Callable[[str, Any, np.ndarray], list[tuple[str, dict[str, Any]]]]] = {
    "reading": _readings, "event": _events, "status": _statuses,
}
