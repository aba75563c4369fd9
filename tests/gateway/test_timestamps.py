"""Event-time parsing: the fast path must agree with datetime.fromisoformat."""

from __future__ import annotations

from datetime import datetime

import pytest

from gateway.ingest.timestamps import TimestampError, TimestampParser


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-24T08:00:00+08:00",
        "2026-11-24T08:00:59.123+08:00",
        "2026-11-24T08:00:07.5-05:30",
        "2026-11-24T00:00:00Z",
        "2026-11-24T00:00:00.250Z",
        "2026-12-31T23:59:59.999+14:00",
        "2026-11-24 08:00:00+08:00",
    ],
)
def test_agrees_with_fromisoformat(text: str) -> None:
    parser = TimestampParser()
    expected = datetime.fromisoformat(text).timestamp()
    assert parser.parse(text) == pytest.approx(expected, abs=1e-6)
    assert parser.parse(text) == pytest.approx(expected, abs=1e-6)  # memoised path too


@pytest.mark.parametrize(
    "raw",
    [
        "2026-11-24T08:00:60+08:00",
        "2026-11-24T08:00:00",
        "2026-11-24T08:00:0a+08:00",
        "2026-11-24T08:00:1_0+08:00",
        "2026-13-24T08:00:00+08:00",
        "2026-11-24T08:00:00+08:0x",
        "1999-12-31T23:59:59Z",
        "",
        12345,
        None,
        [1],
        float("nan"),
    ],
)
def test_rejects_what_is_not_an_event_time(raw: object) -> None:
    with pytest.raises(TimestampError):
        TimestampParser().parse(raw)


def test_epoch_milliseconds() -> None:
    assert TimestampParser().parse(1_795_478_400_123) == pytest.approx(1_795_478_400.123)
