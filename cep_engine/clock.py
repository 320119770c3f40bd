"""The business calendar: working hours in a time zone, minus weekends and holidays.

Pure functions of their inputs. Holidays are Washington State's (``holidays`` package,
country US, subdivision WA, observed days included) plus closure dates from config.
A business day ("1d" in a policy) is one working day's length, e.g. 9 hours for 08:00-17:00.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

import holidays

MAX_DAYS_SCANNED = 3660
"""No business-time computation looks further than about ten years."""


@dataclass(frozen=True)
class BusinessCalendar:
    """Working hours ``day_start``-``day_end`` on ``workdays`` (0 = Monday) in ``timezone``."""

    timezone: str = "America/Los_Angeles"
    day_start: time = time(8, 0)
    day_end: time = time(17, 0)
    workdays: frozenset[int] = frozenset(range(5))
    country: str = "US"
    subdivision: str | None = "WA"
    closures: frozenset[date] = frozenset()
    _holidays: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.day_end <= self.day_start:
            raise ValueError("the working day must end after it starts")
        if not self.workdays:
            raise ValueError("at least one weekday must be a workday")

    @cached_property
    def tz(self) -> ZoneInfo:
        """The calendar's time zone."""
        return ZoneInfo(self.timezone)

    @cached_property
    def holiday_dates(self) -> holidays.HolidayBase:
        """Official holidays (observed days included); years are added as they are asked."""
        return holidays.country_holidays(self.country, subdiv=self.subdivision)

    @property
    def day_seconds(self) -> int:
        """Length of one working day in seconds."""
        start = datetime.combine(date(2000, 1, 3), self.day_start)
        return int((datetime.combine(date(2000, 1, 3), self.day_end) - start).total_seconds())

    def is_business_day(self, day: date) -> bool:
        """A workday that is neither a holiday nor a closure."""
        return (
            day.weekday() in self.workdays
            and day not in self.closures
            and day not in self.holiday_dates
        )

    def window(self, day: date) -> tuple[datetime, datetime]:
        """The working hours of ``day`` as aware instants (DST-correct)."""
        return (
            datetime.combine(day, self.day_start, tzinfo=self.tz),
            datetime.combine(day, self.day_end, tzinfo=self.tz),
        )

    def _local_date(self, instant: datetime) -> date:
        return _aware(instant).astimezone(self.tz).date()

    def _windows(self, start_day: date, step: int) -> Iterator[tuple[datetime, datetime]]:
        day = start_day
        for _ in range(MAX_DAYS_SCANNED):
            if self.is_business_day(day):
                yield self.window(day)
            day += timedelta(days=step)
        raise ValueError("no working time found within ten years; check the calendar")

    def business_seconds(self, start: datetime, end: datetime) -> float:
        """Working seconds between two instants (0 when ``end`` is not after ``start``)."""
        start, end = _aware(start), _aware(end)
        if end <= start:
            return 0.0
        total, day, last = 0.0, self._local_date(start), self._local_date(end)
        while day <= last:
            if self.is_business_day(day):
                lo, hi = self.window(day)
                overlap = (min(hi, end) - max(lo, start)).total_seconds()
                total += max(0.0, overlap)
            day += timedelta(days=1)
        return total

    def subtract(self, instant: datetime, seconds: float) -> datetime:
        """The latest instant that lies ``seconds`` of working time before ``instant``.

        The cutoff of a threshold: anything idle since at or before it has been idle at
        least ``seconds`` of working time at ``instant``.
        """
        instant = _aware(instant)
        if seconds <= 0:
            return instant
        remaining = seconds
        for lo, hi in self._windows(self._local_date(instant), -1):
            top = min(hi, instant)
            available = (top - lo).total_seconds()
            if available <= 0:
                continue
            if available >= remaining:
                return top - timedelta(seconds=remaining)
            remaining -= available
        raise AssertionError("unreachable")

    def add(self, instant: datetime, seconds: float) -> datetime:
        """The earliest instant at which ``seconds`` of working time have passed since
        ``instant``."""
        instant = _aware(instant)
        if seconds <= 0:
            return instant
        remaining = seconds
        for lo, hi in self._windows(self._local_date(instant), 1):
            bottom = max(lo, instant)
            available = (hi - bottom).total_seconds()
            if available <= 0:
                continue
            if available >= remaining:
                return bottom + timedelta(seconds=remaining)
            remaining -= available
        raise AssertionError("unreachable")

    def business_days_before(self, day: date, count: int) -> date:
        """The business day ``count`` business days before ``day`` (``day`` itself if 0)."""
        found = 0
        while found < count:
            day -= timedelta(days=1)
            if self.is_business_day(day):
                found += 1
        return day

    def closed_days(self, start: date, end: date) -> Iterable[date]:
        """Days in [start, end] with no working hours, for documentation and tests."""
        day = start
        while day <= end:
            if not self.is_business_day(day):
                yield day
            day += timedelta(days=1)


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant!r}: business time needs an aware instant")
    return instant


def format_business_seconds(seconds: float, day_seconds: int) -> str:
    """``seconds`` of working time as e.g. ``'4.5 business hours (0.5 business days)'``."""
    hours = seconds / 3600
    return f"{hours:.1f} business hours ({seconds / day_seconds:.1f} business days)"
