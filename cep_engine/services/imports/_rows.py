"""The rows of each kind of spreadsheet, as pydantic models, and the columns they read."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from cep_engine.errors import InvalidInput
from cep_engine.services import _validate
from cep_engine.states import IssueStatus, Priority
from cep_engine.states.action import Source


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class Row(BaseModel):
    """What every row shares: blank cells are absent, titles are one line, owners are
    addresses, free text is within the ``max_text_length`` setting."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _blanks(cls, data: Any) -> Any:
        """Empty cells are absent fields: optional ones take their default."""
        return {k: v for k, v in data.items() if not _blank(v)} if isinstance(data, dict) else data

    @field_validator("title", check_fields=False)
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value or "\x00" in value:
            raise ValueError("must be one line of text")
        return value

    @field_validator("owner", check_fields=False)
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        try:
            return _validate.email(value) if value else None
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None

    @field_validator("description", "trigger", "mitigation", check_fields=False)
    @classmethod
    def _free_text(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return _validate.text(value, "text", required=False)
        except InvalidInput as exc:
            raise ValueError(str(exc).removeprefix("text ")) from None


class IssueRow(Row):
    """Columns of an Issues Log export."""

    title: str = Field(min_length=1, max_length=200)
    priority: Priority
    owner: str
    opened_at: AwareDatetime
    last_activity_at: AwareDatetime
    description: str = ""
    status: IssueStatus = IssueStatus.OPEN

    @field_validator("priority", "status", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower().replace(" ", "_") if isinstance(value, str) else value

    @field_validator("description", mode="before")
    @classmethod
    def _empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @model_validator(mode="after")
    def _in_order(self) -> IssueRow:
        if self.last_activity_at < self.opened_at:
            raise ValueError("last_activity_at is before opened_at")
        return self


class RiskRow(Row):
    """Columns of a Risk Log export."""

    title: str = Field(min_length=1, max_length=200)
    probability: int = Field(ge=1, le=5)
    impact: int = Field(ge=1, le=5)
    trigger: str | None = None
    trigger_date: date | None = None
    owner: str | None = None
    mitigation: str | None = None


class ActionRow(Row):
    """Columns of an Action Items Log export."""

    title: str = Field(min_length=1, max_length=200)
    owner: str | None = None
    due_date: date | None = None
    source: Source = Source.MANUAL
    source_ref: str | None = Field(default=None, max_length=100)

    @field_validator("source", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if value is None:
            return Source.MANUAL
        return value.strip().lower() if isinstance(value, str) else value


COLUMNS: dict[type[Row], tuple[tuple[str, ...], tuple[str, ...]]] = {
    IssueRow: (("title", "priority", "owner", "opened_at", "last_activity_at"),
               ("description", "status")),
    RiskRow: (("title", "probability", "impact"),
              ("trigger", "trigger_date", "owner", "mitigation")),
    ActionRow: (("title",), ("owner", "due_date", "source", "source_ref")),
}
"""Required and optional columns of each kind of file."""
