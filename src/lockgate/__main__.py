"""``python -m lockgate``: the same as the ``lockgate`` command."""

from lockgate.cli.app import main

main()
