"""Smoke test of ``bench/alerting.py``: its measurements run, with tiny sizes on SQLite.

Not a timing test (the machine is shared): it checks that every part still runs against
the current store, outbox, handling store and dispatcher, that the counts add up, that
the rates come out positive, and that the real HTTP receiver got every notification
exactly once (the benchmark's latencies mean nothing if one was lost or sent twice).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from alerting.outbox import Outbox
from bench.alerting import (
    ACTIONS,
    GROUP_STEPS,
    bench_engine,
    fleet,
    main,
    maintenance_silence,
    run_fanout,
    run_transitions,
    run_workflow,
)


async def test_each_measurement_runs_and_counts_add_up(tmp_path: Path) -> None:
    engine = bench_engine(f"sqlite+aiosqlite:///{tmp_path / 'bench.db'}")
    try:
        f = fleet(6, counties=2, towns_per_county=2)
        silences = maintenance_silence(f, share=0.5)
        result = await run_transitions(engine, f, 12, 4, silences=silences)
        assert result.transitions == 3 * 12  # created, raised, resolved
        assert len(result.batch_seconds) == 3 * len(GROUP_STEPS)  # 3 groups of 4
        assert result.notifications > 0
        assert result.muted > 0
        assert result.events > 0
        assert result.transitions_per_s > 0
        assert result.notifications_per_s > 0

        workflow = await run_workflow(engine, f, 4, 2)
        assert workflow.actions == 4 * len(ACTIONS)
        assert workflow.actions_per_s > 0

        fan = await run_fanout(engine, f, burst=12, receivers=3, fanouts=2,
                               fanout_receivers=2, fanout_channels=2)
        over_http = 4 + 12 + 2 * 4  # warm-up, burst, two single-alert fan-outs
        assert fan.copies == Counter({1: over_http}), "lost or duplicated notifications"
        assert not fan.failures
        assert fan.instant is not None
        assert len(fan.instant.keys) == 12
        assert fan.burst_per_s > 0
        assert all(x > 0 for d in [fan.burst, *fan.fanouts] for x in d.latencies)
        counts = await Outbox(engine).counts()
        assert counts == {"pending": 0, "sent": over_http + 12, "dead": 0, "muted": 0}
    finally:
        await engine.dispose()


def test_the_command_prints_every_figure(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    main(["--db", "sqlite", "--sqlite-dir", str(tmp_path), "--alerts", "6",
          "--enterprises", "4", "--batch-sizes", "1,3", "--max-batches", "2",
          "--workflow-alerts", "2", "--tasks", "2", "--burst", "6", "--receivers", "2",
          "--fanouts", "1", "--fanout-receivers", "2", "--fanout-channels", "1"])
    out = capsys.readouterr().out
    assert "SQLAlchemy" in out
    assert "CPUs" in out
    assert "transitions" in out
    assert "actions/s" in out
    assert "received exactly once: 10 of 10" in out  # warm-up 2, burst 6, fan-out 1 x 2
    assert "peak RSS" in out
