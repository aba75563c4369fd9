"""Event-time parsing for payload ``ts`` fields (CONTRACT.md: RFC 3339 with offset or
integer epoch milliseconds).

This runs once per record on the ingest hot path.  The canonical shape
``YYYY-MM-DDTHH:MM:SS[.fff]±HH:MM`` is split into a minute-plus-offset part, memoised,
and the seconds, so a stream of distinct millisecond stamps costs a dict probe and a
``float()`` instead of a full ``datetime`` parse.  Anything else goes through
:meth:`datetime.fromisoformat` (memoised too), which is the reference for validity.
"""

from __future__ import annotations

from datetime import datetime

EARLIEST_TS = 946_684_800.0
"""2000-01-01T00:00:00Z: anything earlier is a device clock that was never set."""

_CACHE_LIMIT = 65_536


class TimestampError(ValueError):
    """The ``ts`` value cannot be read as an event time."""


class TimestampParser:
    """Turns ``ts`` values into epoch seconds (float64), remembering recent strings."""

    def __init__(self) -> None:
        self._cache: dict[str, float] = {}
        self._minutes: dict[str, float] = {}
        """Each memo is cleared when it reaches the limit, bounding memory."""

    def parse(self, raw: object) -> float:
        kind = type(raw)
        if kind is str:
            return self._parse_text(raw)  # type: ignore[arg-type]
        if kind is int or kind is float:
            seconds = float(raw) / 1000.0  # type: ignore[arg-type]
            if seconds != seconds or seconds in (float("inf"), float("-inf")):
                raise TimestampError("ts is not a finite number")
            if seconds < EARLIEST_TS:
                raise TimestampError(
                    f"ts {raw!r} is before 2000-01-01 (epoch milliseconds expected)"
                )
            return seconds
        raise TimestampError(
            f"ts must be an RFC 3339 string or epoch milliseconds, got {kind.__name__}"
        )

    def _parse_text(self, text: str) -> float:
        """Fast path for the canonical shape; exact fallback for everything else."""
        size = len(text)
        if size >= 25 and text[-3] == ":" and text[-6] in "+-":
            zone = text[-6:]
            seconds_text = text[17:-6]
        elif size >= 20 and text[-1] in "Zz":
            zone = "Z"
            seconds_text = text[17:-1]
        else:
            return self._parse_slow(text)
        if (text[10] not in "Tt " or text[16] != ":" or len(seconds_text) < 2
                or (len(seconds_text) > 2 and seconds_text[2] != ".")
                or not seconds_text.replace(".", "", 1).isdigit()):
            return self._parse_slow(text)
        seconds = float(seconds_text)
        if seconds >= 60.0:
            return self._parse_slow(text)
        key = text[:16] + zone
        minute = self._minutes.get(key)
        if minute is None:
            try:
                minute = _parse_rfc3339(text[:16] + ":00" + zone, check_range=False)
            except TimestampError:
                return self._parse_slow(text)  # raises with the text as sent
            if len(self._minutes) >= _CACHE_LIMIT:
                self._minutes.clear()
            self._minutes[key] = minute
        value = minute + seconds
        if value < EARLIEST_TS:
            raise TimestampError(f"ts {text[:64]!r} is before 2000-01-01")
        return value

    def _parse_slow(self, text: str, *, check_range: bool = True) -> float:
        cached = self._cache.get(text)
        if cached is None:
            cached = _parse_rfc3339(text, check_range=check_range)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[text] = cached
        return cached


def _parse_rfc3339(text: str, *, check_range: bool = True) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise TimestampError(f"ts {text[:64]!r} is not RFC 3339") from exc
    if moment.tzinfo is None:
        raise TimestampError(f"ts {text[:64]!r} has no UTC offset (e.g. +08:00)")
    seconds = moment.timestamp()
    if check_range and seconds < EARLIEST_TS:
        raise TimestampError(f"ts {text[:64]!r} is before 2000-01-01")
    return seconds
