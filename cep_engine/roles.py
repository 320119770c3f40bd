"""The roles the Customer Engagement Plan names, on the CTS side and the agency side."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A role a person holds on one project. One person may hold several roles."""

    CLIENT_LIAISON = "client_liaison"
    ASSIGNED_PM = "assigned_pm"
    SENIOR_PM = "senior_pm"
    PROJECT_SPONSOR = "project_sponsor"
    EXECUTIVE_SPONSOR = "executive_sponsor"
    ASSISTANT_DIRECTOR = "assistant_director"
    SERVICE_OWNER = "service_owner"
    CTS_TEAM_MEMBER = "cts_team_member"
    STEERING_COMMITTEE = "steering_committee"
    IMPLEMENTATION_COORDINATOR = "implementation_coordinator"
    AGENCY_TEAM_MEMBER = "agency_team_member"

    @property
    def side(self) -> str:
        """``agency`` for the customer's roles, ``cts`` for the others."""
        return "agency" if self in AGENCY_ROLES else "cts"


AGENCY_ROLES = frozenset({Role.IMPLEMENTATION_COORDINATOR, Role.AGENCY_TEAM_MEMBER})

ROLE_ADMINS = frozenset({Role.ASSIGNED_PM, Role.SENIOR_PM, Role.CLIENT_LIAISON})
"""Roles whose holders may assign roles on their project (once any of them is assigned)."""
