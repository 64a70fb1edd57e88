"""The ``ivr-server`` command: argument parsing and logging set-up only, no logic.

One module per command (``serve``/``check-config``, ``client``, ``loadtest``, ``reload``) under
the group of :mod:`.group`; :mod:`.common` holds what they share.
"""

from ivr_server.cli.common import LOG_LEVELS
from ivr_server.cli.group import main

__all__ = ["LOG_LEVELS", "main"]
