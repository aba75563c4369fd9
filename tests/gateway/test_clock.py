"""Watermark clocks and the sweep grid."""

from __future__ import annotations

import math

import pytest

from gateway.clock import DataClock, SweepGrid


def test_data_clock_never_moves_backwards() -> None:
    clock = DataClock()
    assert clock.now() == -math.inf
    clock.observe(100.0)
    clock.observe(50.0)  # late data
    assert clock.now() == 100.0


def test_grid_starts_at_the_first_instant_and_yields_each_passed_once() -> None:
    grid = SweepGrid(5.0)
    assert grid.passed(12.0) == [10.0]
    assert grid.passed(14.9) == []
    assert grid.passed(26.0) == [15.0, 20.0, 25.0]
    assert grid.next_due == 30.0


def test_grid_bounds_catch_up_after_a_jump() -> None:
    grid = SweepGrid(1.0, max_catch_up=3)
    grid.passed(0.0)
    assert grid.passed(10.0) == [8.0, 9.0, 10.0]
    assert grid.skipped == 7


def test_grid_ignores_an_unstarted_clock() -> None:
    grid = SweepGrid(1.0)
    assert grid.passed(-math.inf) == []
    assert grid.next_due == math.inf


def test_grid_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        SweepGrid(0)
