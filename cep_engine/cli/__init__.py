"""The ``cep`` command line (typer + rich)."""
