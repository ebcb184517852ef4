"""``python -m switchyard`` is the ``switchyard`` command."""

from switchyard.gateway.cli import main

main()
