"""Use cases of the Action Items Log: add, update, done, reopen, cancel, list.

The client liaison keeps the log (with the assigned PM); an item's owner may mark it done.
Items are numbered per project and shown as ``A-<number>``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select

from cep_engine.errors import InvalidInput, NotFound
from cep_engine.roles import Role
from cep_engine.services import _load, _validate
from cep_engine.services._unit import Attempt, attempt
from cep_engine.states.action import ACTION_KEEPERS, ACTION_MACHINE, ActionFacts, Source, ref
from cep_engine.store.db import Store
from cep_engine.store.models import ActionItem, Project

JSON = dict[str, Any]


def source(value: str) -> Source:
    """meeting, issue, risk or manual."""
    return _validate.choice(Source, value, "source")


def add_in(
    ctx: Attempt, project: Project, title: str, *, owner: str | None, due: date | None,
    src: Source, source_ref: str | None = None,
) -> ActionItem:
    """Add an item inside an existing attempt (used by ``add_action``, risks and imports)."""
    number = (ctx.session.scalar(
        select(func.max(ActionItem.number)).where(ActionItem.project_id == project.id)) or 0) + 1
    item = ActionItem(
        project_id=project.id, number=number, title=title,
        owner=_load.person(ctx.session, owner) if owner else None, due_date=due,
        source=src.value, source_ref=source_ref, status="open", created_at=ctx.now,
    )
    ctx.session.add(item)
    ctx.session.flush()
    ctx.about("action", f"{project.key} {ref(number)}", "add")
    ctx.record(to_state="open", reason=f"{src.value}: {title}")
    return item


def add_action(
    store: Store, key: str, title: str, *, actor: str, now: datetime,
    owner: str | None = None, due: date | None = None, source_name: str = "manual",
    source_ref: str | None = None,
) -> ActionItem:
    """Add an item to the Action Items Log (client liaison or assigned PM)."""
    heading = _validate.name(title, "action item title")
    src = source(source_name)
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        project = _load.project(ctx.session, key)
        ctx.about("action", f"{project.key} A-new", "add")
        _load.require(ACTION_KEEPERS, _load.actor_on(ctx, project), ctx, what="add an action item")
        return add_in(ctx, project, heading, owner=owner, due=due, src=src,
                      source_ref=source_ref)


def _load_item(ctx: Attempt, key: str, number: int, trigger: str) -> tuple[ActionItem, set[Role]]:
    project = _load.project(ctx.session, key)
    item = ctx.session.scalars(
        select(ActionItem).where(ActionItem.project_id == project.id,
                                 ActionItem.number == number)
    ).one_or_none()
    if item is None:
        raise NotFound(f"{project.key} has no action item {ref(number)}; "
                       f"see `cep action list {project.key}`")
    ctx.about("action", f"{project.key} {ref(number)}", trigger, from_state=item.status)
    return item, set(_load.actor_on(ctx, project))


def change_status(store: Store, key: str, number: int, trigger: str, *, actor: str,
                  now: datetime, note: str = "") -> ActionItem:
    """done (the owner or a keeper), reopen or cancel (keepers)."""
    text = _validate.text(note, "note", required=False)
    with attempt(store, actor=actor, now=_validate.aware(now), reason=text) as ctx:
        item, roles = _load_item(ctx, key, number, trigger)
        _load.authorize(ACTION_MACHINE, trigger, roles, ctx)  # type: ignore[arg-type]
        facts = ActionFacts(actor_roles=frozenset(roles),
                            actor_is_owner=item.owner is not None and item.owner.email == ctx.actor)
        fired = ACTION_MACHINE.fire(item.status, trigger, facts, entity=ctx.entity)
        item.status = fired.dest
        item.done_at = now if fired.dest == "done" else None
        ctx.record(fired)
    return item


def update_action(
    store: Store, key: str, number: int, *, actor: str, now: datetime,
    title: str | None = None, owner: str | None = None, due: date | None = None,
) -> ActionItem:
    """Change an open item's title, owner or due date (keepers); a new due date re-arms its
    reminders."""
    heading = _validate.name(title, "action item title") if title is not None else None
    if heading is None and owner is None and due is None:
        raise InvalidInput("nothing to change; give --title, --owner or --due")
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        item, roles = _load_item(ctx, key, number, "update")
        _load.authorize(ACTION_MACHINE, "update", roles, ctx)  # type: ignore[arg-type]
        fired = ACTION_MACHINE.fire(item.status, "update", ActionFacts(), entity=ctx.entity)
        changes: list[str] = []
        if heading is not None:
            item.title = heading
            changes.append(f"title {heading!r}")
        if owner is not None:
            item.owner = _load.person(ctx.session, owner)
            changes.append(f"owner {item.owner.email}")
        if due is not None:
            changes.append(f"due {item.due_date} -> {due}")
            item.due_date = due
        ctx.record(fired, reason="; ".join(changes))
    return item
