"""``python -m shopwatch`` is the ``shopwatch`` command."""

from shopwatch.cli.main import main

main()
