"""Business-time arithmetic: weekends, Washington holidays, DST, closures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cep_engine.clock import BusinessCalendar

PT = ZoneInfo("America/Los_Angeles")
CAL = BusinessCalendar()
H = 3600


def pt(*args: int) -> datetime:
    return datetime(*args, tzinfo=PT)  # type: ignore[misc]


def test_friday_before_a_monday_holiday() -> None:
    """4 business hours from Friday 16:30 before Martin Luther King Jr. Day (Mon 2027-01-18):
    30 minutes on Friday, Monday is a holiday, 3.5 hours on Tuesday: Tuesday 11:30."""
    assert CAL.add(pt(2027, 1, 15, 16, 30), 4 * H) == pt(2027, 1, 19, 11, 30)
    assert CAL.subtract(pt(2027, 1, 19, 11, 30), 4 * H) == pt(2027, 1, 15, 16, 30)
    assert CAL.add(pt(2027, 1, 15, 16, 30), 2 * H) == pt(2027, 1, 19, 9, 30)
    assert CAL.add(pt(2027, 1, 15, 16, 30), 9 * H) == pt(2027, 1, 19, 16, 30)


def test_weekend_is_skipped() -> None:
    assert CAL.add(pt(2026, 11, 6, 16, 0), 2 * H) == pt(2026, 11, 9, 9, 0)


def test_consecutive_holidays_thanksgiving_and_the_day_after() -> None:
    assert not CAL.is_business_day(date(2026, 11, 26))
    assert not CAL.is_business_day(date(2026, 11, 27))
    assert CAL.add(pt(2026, 11, 25, 15, 0), 4 * H) == pt(2026, 11, 30, 10, 0)


def test_observed_holiday_closes_the_office() -> None:
    assert not CAL.is_business_day(date(2026, 7, 3))


def test_dst_spring_forward_weekend_keeps_working_hours_local() -> None:
    start = pt(2027, 3, 12, 16, 0)
    end = CAL.add(start, 2 * H)
    assert end == pt(2027, 3, 15, 9, 0)
    assert end.astimezone(UTC).hour == 16
    assert CAL.business_seconds(start, end) == 2 * H


def test_dst_fall_back_weekend() -> None:
    assert CAL.add(pt(2026, 10, 30, 16, 0), 2 * H) == pt(2026, 11, 2, 9, 0)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (pt(2026, 11, 7, 10, 0), pt(2026, 11, 9, 9, 0)),
        (pt(2026, 11, 3, 20, 0), pt(2026, 11, 4, 9, 0)),
        (pt(2026, 11, 4, 6, 0), pt(2026, 11, 4, 9, 0)),
    ],
)
def test_activity_outside_working_hours_counts_from_the_next_opening(
    start: datetime, expected: datetime
) -> None:
    assert CAL.add(start, H) == expected


def test_closure_dates_from_config() -> None:
    cal = BusinessCalendar(closures=frozenset({date(2026, 11, 9)}))
    assert cal.add(pt(2026, 11, 6, 16, 0), 2 * H) == pt(2026, 11, 10, 9, 0)


def test_business_days_before() -> None:
    assert CAL.business_days_before(date(2026, 11, 30), 2) == date(2026, 11, 24)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        CAL.add(datetime(2026, 11, 2, 9, 0), H)


instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31),
                        timezones=st.just(UTC))


@settings(max_examples=200, deadline=None)
@given(instants, st.integers(min_value=1, max_value=40 * 9 * H))
def test_subtract_gives_a_cutoff_exactly_that_far_back(at: datetime, seconds: int) -> None:
    cutoff = CAL.subtract(at, seconds)
    assert CAL.business_seconds(cutoff, at) == pytest.approx(seconds)
    assert CAL.business_seconds(cutoff + timedelta(seconds=1), at) < seconds


@settings(max_examples=200, deadline=None)
@given(instants, st.integers(min_value=1, max_value=40 * 9 * H))
def test_add_is_the_inverse_of_business_seconds(at: datetime, seconds: int) -> None:
    assert CAL.business_seconds(at, CAL.add(at, seconds)) == pytest.approx(seconds)
