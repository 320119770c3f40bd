"""The escalation policy file: the shipped default and clear errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from cep_engine.errors import ConfigError
from cep_engine.escalation.policy import load_policy, parse_duration
from cep_engine.settings import REPO_CONFIG_DIR

DEFAULT = REPO_CONFIG_DIR / "escalation.yaml"


def test_default_policy_loads_and_snapshots_in_seconds() -> None:
    policy = load_policy(DEFAULT)
    snap = policy.snapshot()
    assert [s["level"] for s in snap["critical"]] == ["senior_pm", "project_sponsor",
                                                       "executive_sponsor"]
    assert snap["critical"][0]["after_seconds"] == 2 * 3600
    assert snap["high"][1]["after_seconds"] == 2 * 9 * 3600
    assert policy.snooze_max_seconds == 5 * 9 * 3600


@pytest.mark.parametrize(("text", "seconds"), [("4h", 14400), ("30m", 1800), ("2d", 64800),
                                                ("1d 4h", 46800)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text, 9 * 3600) == seconds


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "escalation.yaml"
    path.write_text(text)
    return path


def _bad(tmp_path: Path, old: str, new: str) -> str:
    path = _write(tmp_path, DEFAULT.read_text().replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    return str(info.value)


def test_bad_role_names_file_line_and_field(tmp_path: Path) -> None:
    msg = _bad(tmp_path, "to: [senior_pm],", "to: [senior_pmm],")
    line = next(i for i, ln in enumerate(DEFAULT.read_text().splitlines(), 1)
                if "to: [senior_pm]," in ln)
    assert f"escalation.yaml:{line}:" in msg
    assert "ladders.critical.0.to.0" in msg
    assert "senior_pmm" in msg


def test_thresholds_must_grow(tmp_path: Path) -> None:
    msg = _bad(tmp_path, "after: 4h, to: [project_sponsor]", "after: 1h, to: [project_sponsor]")
    assert "thresholds must grow" in msg


def test_rungs_climb_in_order(tmp_path: Path) -> None:
    msg = _bad(tmp_path, "{level: project_sponsor,   after: 4h",
               "{level: executive_sponsor,   after: 4h")
    assert "one rung at a time" in msg


def test_bad_duration_and_unknown_key(tmp_path: Path) -> None:
    assert "not a duration" in _bad(tmp_path, "after: 2h,", "after: soon,")
    assert "snooze_maximum" in _bad(tmp_path, "snooze_max:", "snooze_maximum:")


def test_missing_priority_and_bad_yaml(tmp_path: Path) -> None:
    text = DEFAULT.read_text()
    low = text.index("  low:")
    path = _write(tmp_path, text[:low])
    with pytest.raises(ConfigError, match="no ladder for priority low"):
        load_policy(path)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_policy(_write(tmp_path, "ladders: [unclosed"))
