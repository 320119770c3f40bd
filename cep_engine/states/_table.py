"""Machines as tables: states, transitions, guards and roles, run by ``transitions``.

A :class:`MachineTable` is the single source of truth of one state machine. The same table
builds the shared ``transitions.Machine`` that decides every trigger, the Mermaid diagram
(``cep diagram``) and the Markdown tables of the README.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any, Generic, TypeVar

from transitions import Machine, MachineError

from cep_engine.errors import TransitionRefused
from cep_engine.roles import Role

F = TypeVar("F")

SAME = "="
"""A transition ``dest`` meaning: stay in the source state (a reflexive trigger)."""


@dataclass(frozen=True)
class Guard(Generic[F]):
    """A named precondition of a transition.

    ``check`` is a pure function of the facts: it returns ``None`` when the guard passes and,
    when it fails, a short sentence saying what would satisfy it.
    """

    name: str
    check: Callable[[F], str | None]

    @property
    def doc(self) -> str:
        """First line of the check's docstring: what the guard requires, in the plan's words."""
        return (self.check.__doc__ or self.name).strip().splitlines()[0]


@dataclass(frozen=True)
class GuardResult:
    """The outcome of one guard, as stored in the audit trail."""

    name: str
    passed: bool
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the audit row."""
        return {"guard": self.name, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class Transition(Generic[F]):
    """One row of a machine table: ``trigger`` moves ``source`` to ``dest`` if guards pass."""

    trigger: str
    source: tuple[str, ...]
    dest: str
    guards: tuple[Guard[F], ...] = ()


@dataclass(frozen=True)
class Fired:
    """A trigger the machine accepted."""

    trigger: str
    source: str
    dest: str
    guards: tuple[GuardResult, ...]


class _Subject:
    """Carrier model that holds one entity's state while a trigger is decided.

    It is handed straight to the machine's ``Event.trigger``: no ``add_model`` and
    ``remove_model`` per call, which cost ~0.1 ms and bind a method per state and trigger.
    """

    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


@dataclass(frozen=True)
class MachineTable(Generic[F]):
    """A state machine declared as data.

    ``roles`` names, per trigger, the roles whose holders may fire it. ``final`` states have
    no way out. Instances are immutable; :meth:`fire` uses one shared ``transitions.Machine``.
    """

    name: str
    states: type[StrEnum]
    initial: str
    final: frozenset[str]
    transitions: tuple[Transition[F], ...]
    roles: Mapping[str, frozenset[Role]]
    entity_label: str = "entity"

    @property
    def triggers(self) -> tuple[str, ...]:
        """Trigger names in table order, without repeats."""
        return tuple(dict.fromkeys(t.trigger for t in self.transitions))

    @cached_property
    def machine(self) -> Machine:
        """The shared ``transitions.Machine`` built once from the table."""
        return Machine(
            model=None,
            states=[s.value for s in self.states],
            transitions=[self._as_transitions_row(t) for t in self.transitions],
            initial=self.initial,
            auto_transitions=False,
            send_event=False,
        )

    def _as_transitions_row(self, row: Transition[F]) -> dict[str, Any]:
        return {
            "trigger": row.trigger,
            "source": [str(s) for s in row.source],
            "dest": str(row.dest),
            "conditions": [_traced(g) for g in row.guards],
        }

    def allowed_roles(self, trigger: str) -> frozenset[Role]:
        """Roles allowed to fire ``trigger``; unknown triggers allow nobody."""
        return self.roles.get(trigger, frozenset())

    def available(self, state: str) -> tuple[str, ...]:
        """Triggers that have a transition out of ``state`` (guards not evaluated)."""
        return tuple(
            dict.fromkeys(t.trigger for t in self.transitions if state in t.source)
        )

    def fire(self, state: str, trigger: str, facts: F, *, entity: str) -> Fired:
        """Decide ``trigger`` from ``state`` with ``facts``; return the move or raise.

        Raises :class:`TransitionRefused` naming the failed guard and what would satisfy it,
        or saying which triggers the state allows. Nothing is written here: the caller's
        database transaction makes the move durable.
        """
        subject = _Subject(state)
        trace: list[GuardResult] = []
        event = self.machine.events.get(trigger)
        if event is None:
            raise self._invalid_trigger(state, trigger, entity)
        try:
            accepted = event.trigger(subject, facts=facts, trace=trace)
        except MachineError as exc:
            raise self._invalid_trigger(state, trigger, entity) from exc
        if not accepted:
            raise self._guard_failed(state, trigger, entity, trace)
        return Fired(trigger, state, subject.state, tuple(trace))

    def _invalid_trigger(self, state: str, trigger: str, entity: str) -> TransitionRefused:
        allowed = ", ".join(self.available(state)) or "none (final state)"
        if trigger not in self.triggers:
            what = f"unknown {self.name} trigger '{trigger}'"
        else:
            what = f"'{trigger}' is not possible from {state}"
        return TransitionRefused(
            f"{entity}: {what}; triggers allowed from {state}: {allowed}",
            entity=entity,
            state=state,
            trigger=trigger,
        )

    def _guard_failed(
        self, state: str, trigger: str, entity: str, trace: list[GuardResult]
    ) -> TransitionRefused:
        failed = [r for r in trace if not r.passed]
        first = failed[0] if failed else GuardResult("unknown", False, "a guard failed")
        return TransitionRefused(
            f"{entity}: {trigger} from {state} refused by guard {first.name}: {first.detail}",
            entity=entity,
            state=state,
            trigger=trigger,
            guard=first.name,
            guards=[r.as_dict() for r in trace],
        )

    def check(self, state: str, trigger: str, facts: F) -> list[GuardResult]:
        """Evaluate, without firing, every guard of the transitions ``trigger`` has from
        ``state``; used by ``show`` commands to say what is still missing."""
        return [
            _evaluate(g, facts)
            for t in self.transitions
            if t.trigger == trigger and state in t.source
            for g in t.guards
        ]

    def edges(self) -> list[tuple[str, str, Transition[F]]]:
        """Every (source, dest, row), with ``"="`` (stay) resolved to the source."""
        return [
            (str(src), str(src) if t.dest == SAME else str(t.dest), t)
            for t in self.transitions
            for src in t.source
        ]

    def _closure(self, start: str) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            here = todo.pop()
            for src, dest, _ in self.edges():
                if src == here and dest not in seen:
                    seen.add(dest)
                    todo.append(dest)
        return seen

    def reachable(self) -> set[str]:
        """States reachable from the initial state."""
        return self._closure(self.initial)

    def can_reach_final(self, state: str) -> bool:
        """True when some path leads from ``state`` to a final state."""
        return bool(self._closure(state) & self.final)

    def engine_only(self, trigger: str) -> bool:
        """Triggers with no roles are fired by the engine itself, never by a person."""
        return not self.roles.get(trigger)


def _evaluate(guard: Guard[F], facts: F) -> GuardResult:
    detail = guard.check(facts)
    return GuardResult(guard.name, detail is None, detail)


def _traced(guard: Guard[F]) -> Callable[..., bool]:
    """Wrap a guard as a ``transitions`` condition that records its result in ``trace``."""

    def condition(*, facts: F, trace: list[GuardResult]) -> bool:
        result = _evaluate(guard, facts)
        trace.append(result)
        return result.passed

    condition.__name__ = guard.name
    return condition


def sources(states: Iterable[StrEnum]) -> tuple[str, ...]:
    """Tuple of state values, for the ``source`` column of a table."""
    return tuple(s.value for s in states)
