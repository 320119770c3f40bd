"""Default readiness guides, loaded from editable YAML templates in ``config/readiness/``.

Each file ``<stage>.yaml`` holds a title and the tasks every new project's guide starts with::

    title: Pre-cutover readiness
    tasks:
      - text: Network connectivity from the agency to the SDC is tested
        party: joint          # cts, customer or joint
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cep_engine.errors import ConfigError
from cep_engine.states import Stage


class Party(StrEnum):
    """Who does a readiness task."""

    CTS = "cts"
    CUSTOMER = "customer"
    JOINT = "joint"


class TaskTemplate(BaseModel):
    """One default task of a guide."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)
    party: Party


class GuideTemplate(BaseModel):
    """The default content of one stage's readiness guide."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    tasks: list[TaskTemplate] = []


def load_guides(config_dir: Path) -> dict[Stage, GuideTemplate]:
    """Templates for every stage; a stage without a file gets an empty guide."""
    folder = config_dir / "readiness"
    return {stage: _load_one(folder / f"{stage.value}.yaml", stage) for stage in Stage}


def _load_one(path: Path, stage: Stage) -> GuideTemplate:
    default_title = stage.value.replace("_", "-").capitalize() + " readiness"
    if not path.exists():
        return GuideTemplate(title=default_title)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return GuideTemplate.model_validate(data)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the file") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(
            f"{path}: field '{where}' has invalid value {err.get('input')!r}: {err['msg']}"
        ) from None
