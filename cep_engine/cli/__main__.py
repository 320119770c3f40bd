"""``python -m cep_engine.cli`` runs the ``cep`` command."""

from cep_engine.cli.app import main

main()
