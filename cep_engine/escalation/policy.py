"""The escalation policy (``config/escalation.yaml``), validated by pydantic.

Per priority, an ordered ladder of levels; each step has a threshold of business time
without activity and the roles to notify. A bad policy raises :class:`ConfigError` naming
the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cep_engine.clock import BusinessCalendar
from cep_engine.errors import ConfigError
from cep_engine.roles import Role
from cep_engine.states.issue import LADDER, Level, Priority

WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*d)?\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*"
                       r"(?:(\d+(?:\.\d+)?)\s*m)?\s*$")


def parse_duration(text: str, day_seconds: int) -> int:
    """Business seconds of ``'2d'``, ``'4h'``, ``'30m'`` or ``'1d 4h'`` (1d = one workday)."""
    match = _DURATION.match(str(text))
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 4h, 30m, 2d or 1d 4h")
    days, hours, minutes = (float(g) if g else 0.0 for g in match.groups())
    return int(days * day_seconds + hours * 3600 + minutes * 60)


class Holidays(BaseModel):
    """Which official holiday calendar applies."""

    model_config = ConfigDict(extra="forbid")
    country: str = "US"
    subdivision: str | None = "WA"


class CalendarConfig(BaseModel):
    """Working hours, workdays, holidays and closures."""

    model_config = ConfigDict(extra="forbid")
    timezone: str = "America/Los_Angeles"
    workday_start: time = time(8, 0)
    workday_end: time = time(17, 0)
    workdays: list[str] = ["mon", "tue", "wed", "thu", "fri"]
    holidays: Holidays = Holidays()
    closures: list[date] = []

    @field_validator("workdays")
    @classmethod
    def _known_days(cls, value: list[str]) -> list[str]:
        bad = [d for d in value if d.lower() not in WEEKDAYS]
        if bad or not value:
            raise ValueError(f"workdays must be among {', '.join(WEEKDAYS)}; got {bad or value}")
        return [d.lower() for d in value]

    def build(self) -> BusinessCalendar:
        """The :class:`BusinessCalendar` this config describes."""
        try:
            return BusinessCalendar(
                timezone=self.timezone, day_start=self.workday_start,
                day_end=self.workday_end,
                workdays=frozenset(WEEKDAYS[d] for d in self.workdays),
                country=self.holidays.country, subdivision=self.holidays.subdivision,
                closures=frozenset(self.closures),
            )
        except (ValueError, KeyError, NotImplementedError) as exc:
            raise ValueError(str(exc)) from exc


class Step(BaseModel):
    """One rung: reach ``level`` after ``after`` of business time without activity."""

    model_config = ConfigDict(extra="forbid")
    level: Level
    after: str
    to: list[Role] = Field(min_length=1)
    cc: list[Role] = []


class EscalationPolicy(BaseModel):
    """The whole policy: calendar, snooze cap and one ladder per priority."""

    model_config = ConfigDict(extra="forbid")
    calendar: CalendarConfig = CalendarConfig()
    snooze_max: str = "5d"
    ladders: dict[Priority, list[Step]]

    @model_validator(mode="after")
    def _ladders_climb(self) -> EscalationPolicy:
        day = self.business_calendar.day_seconds
        parse_duration(self.snooze_max, day)
        missing = [p.value for p in Priority if p not in self.ladders]
        if missing:
            raise ValueError(f"no ladder for priority {', '.join(missing)}")
        for priority, steps in self.ladders.items():
            _check_ladder(priority, steps, day)
        return self

    @property
    def business_calendar(self) -> BusinessCalendar:
        """The calendar thresholds are measured on."""
        return self.calendar.build()

    @property
    def snooze_max_seconds(self) -> int:
        """Longest snooze, in business seconds."""
        return parse_duration(self.snooze_max, self.business_calendar.day_seconds)

    def snapshot(self) -> dict[str, Any]:
        """The ladders with thresholds in business seconds: what is stored with an issue."""
        day = self.business_calendar.day_seconds
        return {
            p.value: [
                {"level": s.level.value, "after_seconds": parse_duration(s.after, day),
                 "after": s.after, "to": [r.value for r in s.to],
                 "cc": [r.value for r in s.cc]}
                for s in steps
            ]
            for p, steps in sorted(self.ladders.items())
        }


def snapshot_digest(body: dict[str, Any]) -> str:
    """Content digest of a snapshot, so identical ladders share one stored row."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _check_ladder(priority: Priority, steps: list[Step], day_seconds: int) -> None:
    ranks = [LADDER.index(s.level) for s in steps]
    if not steps:
        raise ValueError(f"ladder {priority.value} is empty")
    if Level.TEAM in [s.level for s in steps]:
        raise ValueError(f"ladder {priority.value}: team is where issues start, not a step")
    if ranks != list(range(1, len(steps) + 1)):
        raise ValueError(f"ladder {priority.value}: levels must climb one rung at a time, "
                         f"{' -> '.join(lv.value for lv in LADDER[1:])}, from senior_pm")
    after = [parse_duration(s.after, day_seconds) for s in steps]
    if any(b <= a for a, b in zip([0, *after], after, strict=False)):
        raise ValueError(f"ladder {priority.value}: thresholds must grow step by step")


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML was built with it (~10x faster), else the pure one."""


def load_policy(path: Path) -> EscalationPolicy:
    """Read and validate a policy file; errors name the file, line and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: escalation policy not found") from None
    try:
        data = yaml.load(text, Loader=_LOADER) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the file") from None
    try:
        return EscalationPolicy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        line = _line_of(yaml.compose(text, Loader=_LOADER), err["loc"])
        where = f"{path}:{line}" if line else str(path)
        msg = err["msg"].removeprefix("Value error, ")
        field = ".".join(loc) or "(top level)"
        value = f" value {err['input']!r}" if loc and not isinstance(err["input"], dict) else ""
        raise ConfigError(f"{where}: field '{field}'{value}: {msg}") from None


def _line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``loc``, as far as it can be followed."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            match = node.value[part] if part < len(node.value) else None
        else:
            match = None
        if match is None:
            break
        node, line = match, match.start_mark.line + 1
    return line
