"""Prefect flows wrapping the service layer; they arrive with the Prefect deployment work."""
