"""The load generator behind ``ivr-server loadtest``: simulated IVRs with many ports running call
scripts against a running server, over a lean raw GLI protocol, in one or several processes.

Every reply is validated (CallId, element, key fields); any mismatch or timeout is an error in the
report, by kind. How to use it: ``docs/loadtest.md``.
"""

from ivr_server.loadtest.plots import PlotsUnavailable, draw_plots, require_matplotlib
from ivr_server.loadtest.report import render, write_json
from ivr_server.loadtest.runner import LoadTestError, LoadTestOptions, Outcome, plan, run_loadtest
from ivr_server.loadtest.scripts import (
    BUILTIN_SCRIPTS,
    Script,
    ScriptError,
    Step,
    builtin_script,
    load_script,
    parse_script,
)
from ivr_server.loadtest.work import WorkerResult, WorkerSpec

__all__ = [
    "BUILTIN_SCRIPTS",
    "LoadTestError",
    "LoadTestOptions",
    "Outcome",
    "PlotsUnavailable",
    "Script",
    "ScriptError",
    "Step",
    "WorkerResult",
    "WorkerSpec",
    "builtin_script",
    "draw_plots",
    "load_script",
    "parse_script",
    "plan",
    "render",
    "require_matplotlib",
    "run_loadtest",
    "write_json",
]
