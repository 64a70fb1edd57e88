"""``python -m ivr_server.cli`` = the ``ivr-server`` command."""

from ivr_server.cli import main

main()
