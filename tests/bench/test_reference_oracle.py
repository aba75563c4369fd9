"""The vectorized core against the plain-Python reference, on a simulator suite.

Six sites, four days, every scenario (hidden operation, silent and faked sites, frozen
and cloned data, interlocks, sparks, hopper temperature rises, outages with backfill,
clock skew), decoded as ``riskwatch replay`` decodes a recording.  The real pipeline
(:func:`bench.detectors.run_pipeline`: its ``process``/``advance``, alerting left out)
and :class:`bench.reference_core.ReferenceCore` must emit the same condition changes,
row by row, in the same batch or sweep: subjects, severities and times exactly, values
within 1e-9.  The tamper rule is the test reference of
``tests/detectors/test_tamper_reference.py``, so the point-level fake-data rule is
covered too.

Batches of the pipeline's 5 s sweep grid are small here (tens of samples), where the
vectorized core pays per call, so that run covers the first ~20 hours; the whole suite
runs on a 60 s grid, with QoS 1 redeliveries mixed in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.detectors import (
    Step,
    StepRow,
    differences,
    record_steps,
    run_pipeline,
    run_reference,
    run_vectorized,
)
from bench.reference_core import RULES
from gateway.registry import Registry
from simulators.suite import SuiteOptions, build_suite

Message = tuple[str, Any]
Changes = dict[str, list[StepRow]]


@pytest.fixture(scope="module")
def suite() -> tuple[Registry, list[Message]]:
    built = build_suite(SuiteOptions(sites=6, days=4, seed=5))
    return Registry(built.registry, source="<suite>"), list(built.messages())


@pytest.fixture(scope="module")
def first_day(suite: tuple[Registry, list[Message]]) -> tuple[list[Step], Changes]:
    """The first 100,000 samples (about 20 hours) on the pipeline's 5 s grid, and the
    pipeline's changes."""
    registry, messages = suite
    steps = record_steps(registry, messages, max_samples=100_000)
    return steps, run_pipeline(registry, steps)


def redelivered(messages: list[Message], share: float, seed: int) -> list[Message]:
    """The messages with a ``share`` of them sent again 1-500 messages later (QoS 1)."""
    rng = np.random.default_rng(seed)
    again = np.flatnonzero(rng.random(len(messages)) < share)
    at = np.r_[np.arange(len(messages)), again + rng.integers(1, 500, again.shape[0]) + 0.5]
    source = np.r_[np.arange(len(messages)), again]
    return [messages[i] for i in source[np.argsort(at, kind="stable")].tolist()]


def assert_same(got: Changes, want: Changes) -> None:
    problems = {rule: differences(got[rule], want[rule]) for rule in RULES}
    assert not any(problems.values()), {rule: p for rule, p in problems.items() if p}


def fired(changes: Changes) -> set[str]:
    return {rule for rule, rows in changes.items() if any(r[4] > 0 for r in rows)}


def test_pipeline_and_reference_agree_on_the_5_s_sweep_grid(
    suite: tuple[Registry, list[Message]], first_day: tuple[list[Step], Changes],
) -> None:
    registry, _ = suite
    steps, got = first_day

    want = run_reference(registry, steps)

    assert_same(got, want)
    assert {"threshold", "silence", "plant_state", "interlock_violation", "tamper",
            "fake_offline"} <= fired(want)


def test_pipeline_and_reference_agree_on_the_whole_suite_with_redeliveries(
    suite: tuple[Registry, list[Message]],
) -> None:
    registry, messages = suite
    steps = record_steps(registry, redelivered(messages, share=0.01, seed=2),
                         sweep_interval_s=60.0)

    got = run_pipeline(registry, steps, sweep_interval_s=60.0)
    want = run_reference(registry, steps)

    assert_same(got, want)
    # Every rule fires somewhere (the suite was chosen for it), so the agreement above
    # is not that of two silent implementations.
    assert fired(want) == set(RULES)


def test_the_bench_driver_calls_the_detectors_as_the_pipeline_does(
    suite: tuple[Registry, list[Message]], first_day: tuple[list[Step], Changes],
) -> None:
    """``bench/detectors.py`` times :class:`~bench.detectors.VectorCore`, a copy of the
    pipeline's calls without alerting: it must stay a faithful copy."""
    registry, _ = suite
    steps, pipeline = first_day

    assert_same(run_vectorized(registry, steps), pipeline)
