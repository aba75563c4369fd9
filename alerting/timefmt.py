"""Alert times on the wire: RFC 3339 in the site's zone, millisecond resolution.

Alerts carry event times as epoch seconds (float) in memory, epoch milliseconds in the
store and RFC 3339 strings in JSON (CONTRACT.md §4).  Milliseconds are the common
resolution of all three, so every conversion rounds to whole milliseconds through an
integer: a float never goes through ``datetime.fromtimestamp`` directly, whose
microsecond rounding would make ``08:00:00.1229999`` and ``08:00:00.123`` differ.

Strings use the UTC offset of the site's time zone at that instant (``+08:00`` for
Asia/Shanghai) because operators read them as local time; fractional seconds appear
only when non-zero, so whole-second times look like the contract's examples.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def to_ms(epoch_s: float) -> int:
    """Epoch seconds to integer epoch milliseconds (round half to even).

    >>> to_ms(1764000000.1234)
    1764000000123
    """
    return round(epoch_s * 1000.0)


def from_ms(epoch_ms: int) -> float:
    """Integer epoch milliseconds to epoch seconds.

    >>> from_ms(1764000000123)
    1764000000.123
    """
    return epoch_ms / 1000.0


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, with an error that names it when it does not exist.

    ``ZoneInfo`` caches instances itself, so callers need not keep their own.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def format_ts(epoch_s: float, timezone: str) -> str:
    """RFC 3339 string of ``epoch_s`` with the UTC offset of ``timezone`` at that time.

    >>> format_ts(1795478400.0, "Asia/Shanghai")
    '2026-11-24T08:00:00+08:00'
    >>> format_ts(1795478400.25, "Asia/Shanghai")
    '2026-11-24T08:00:00.250+08:00'
    >>> format_ts(1795478400.0, "UTC")
    '2026-11-24T00:00:00+00:00'
    """
    ms = to_ms(epoch_s)
    moment = (_EPOCH + ms * _ONE_MS).astimezone(zone(timezone))
    return moment.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")


def parse_ts(text: str) -> float:
    """Epoch seconds of an RFC 3339 string that carries an offset (``Z`` accepted).

    The result is rounded to whole milliseconds, the resolution of :func:`format_ts`,
    so ``parse_ts(format_ts(t, tz)) == from_ms(to_ms(t))`` for every zone.

    >>> parse_ts("2026-11-24T08:00:00.250+08:00")
    1795478400.25
    >>> parse_ts("2026-11-24T00:00:00Z")
    1795478400.0
    """
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"time {text!r} is not RFC 3339") from exc
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset (e.g. +08:00)")
    return from_ms(round((moment - _EPOCH) / _ONE_MS))
