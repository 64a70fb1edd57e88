"""Shared fixtures: fail any test during which the event loop reported an unhandled error, or
which left a socket (or anything else) to be finalised unclosed: a collection at the end of each
test reports it there, not in whichever later test the collector happens to run (the server's
own young collections every 50 ms, ``memory.YoungCollections``, made that a matter of chance).
And the coverage floor, held to the whole suite only."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """The coverage floor (``[tool.coverage.report] fail_under``) is the whole suite's: a run of
    some of the tests (paths named, ``-k``, ``-m``, ``--lf``, ``--deselect``) is measured but
    gets neither the report nor the floor (``--no-cov`` skips measuring)."""
    plugin = config.pluginmanager.get_plugin("_cov")
    if plugin is None or _whole_suite(config):
        return
    plugin.options.cov_fail_under = None
    plugin.options.cov_report = {}


def _whole_suite(config: pytest.Config) -> bool:
    option = config.option
    return config.args_source is pytest.Config.ArgsSource.TESTPATHS and not (
        option.keyword or option.markexpr or getattr(option, "lf", False) or option.deselect
    )


@pytest.fixture(autouse=True)
async def _loop_errors_fail_the_test() -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield
    loop.set_exception_handler(None)
    gc.collect()  # what the test left unclosed is reported as its own, not a later test's
    assert not errors, f"the event loop reported unhandled errors: {errors}"
