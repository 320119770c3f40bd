"""Notifications: the transactional outbox, templates and delivery over SMTP."""
