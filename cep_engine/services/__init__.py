"""Use cases: each state-changing function runs in one transaction and takes ``now``."""
