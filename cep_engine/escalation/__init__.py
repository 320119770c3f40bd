"""Escalation policy and sweep of the Issues Log; they arrive with the escalation work."""
