"""``python -m ivr_server`` = the ``ivr-server`` command."""

from ivr_server.cli import main

main()
