"""``python -m ranum``: the same CLI as the ``ranum`` command."""

from ranum.cli import main

main()
