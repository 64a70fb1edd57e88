"""Configuration reloads of a running server: the file read off the loop, requests coalesced.

A reload is asked for by SIGHUP (SIGUSR2: forced), ``ivr-server reload`` (which sends them) and
``POST /api/v1/reload``. :meth:`Reloader.request` serves them all:

- The file read, the TOML parse and the validation (the slow part: about a second for 20,000
  ports), what the file changes against the running configuration and the index of its ports
  (:func:`~ivr_server.service.reload.prepare_reload`), run in a worker thread
  (:func:`asyncio.to_thread`); the event loop goes on serving the IVRs meanwhile. The
  :class:`~ivr_server.config.ServerConfig` it gives back is immutable.
- One reload runs at a time. Requests that arrive while one runs wait for the next run, which
  starts when it ends and re-reads the file once for all of them (forced if any of them is):
  200 SIGHUPs in a burst cost two or three reloads, not 200, and each requester gets the outcome
  of a reload that started after it asked, so it saw the file as it was when it asked.
- The change is then applied on the loop (:meth:`IvrService.reload
  <ivr_server.service.IvrService.reload>`): the refusal of a reload that would strand live calls
  is decided there, against the calls of that moment. The heap is collected and frozen again
  (:meth:`IvrServer.settle_heap <ivr_server.runtime.IvrServer.settle_heap>`) in a later turn, so
  that the IVRs wait for one of the two at a time.

Every run's outcome goes to :attr:`IvrServer.on_reload <ivr_server.runtime.IvrServer.on_reload>`
(the status file of ``ivr-server reload``), and before it starts, :attr:`IvrServer.on_reload_start`
is told (the status file says a reload is running, so that ``ivr-server reload`` started meanwhile
waits for the next one). :meth:`Reloader.apply` is the same without the thread and the queue, for
a configuration already in hand (tests, embedding) or a synchronous caller.
"""

from __future__ import annotations

__all__ = ["Reloader"]

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ivr_server.config import ServerConfig, load_config
from ivr_server.errors import ConfigError
from ivr_server.runtime.status import ReloadOutcome
from ivr_server.service import ReloadRefused
from ivr_server.service.reload import PreparedReload, describe_stranded, prepare_reload
from ivr_server.switch import Switch

if TYPE_CHECKING:
    from ivr_server.runtime.app import IvrServer

log = logging.getLogger("ivr_server.runtime")


@dataclass(slots=True)
class _Waiting:
    """The requests waiting for the next run: one future for all of them."""

    future: asyncio.Future[ReloadOutcome]
    force: bool = False
    count: int = field(default=1)


class Reloader:
    """The reloads of one server (see the module docstring)."""

    def __init__(self, server: IvrServer) -> None:
        self.server = server
        self.runs = 0
        """Reloads run so far by :meth:`request` (coalesced requests count once)."""
        self.requests = 0
        """Requests :meth:`request` received so far."""
        self._waiting: _Waiting | None = None
        self._runner: asyncio.Task[None] | None = None
        self._spawned: set[asyncio.Task[ReloadOutcome]] = set()

    @property
    def running(self) -> bool:
        """A reload is being read or applied."""
        return self._runner is not None and not self._runner.done()

    # ------------------------------------------------------------------ requests

    async def request(self, *, force: bool = False) -> ReloadOutcome:
        """Re-read the configuration file and apply it: the outcome of the next run that starts
        after this call (coalesced with the other requests waiting for it)."""
        self.requests += 1
        waiting = self._waiting
        if waiting is None:
            waiting = self._waiting = _Waiting(asyncio.get_running_loop().create_future(), force)
        else:
            waiting.force = waiting.force or force
            waiting.count += 1
        if not self.running:
            self._runner = asyncio.get_running_loop().create_task(self._run_waiting())
        return await asyncio.shield(waiting.future)

    def signal(self, force: bool = False) -> None:
        """A request from a signal handler (SIGHUP, SIGUSR2): nobody awaits its outcome, which
        goes to the log and the status file."""
        task = asyncio.get_running_loop().create_task(self.request(force=force))
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    async def _run_waiting(self) -> None:
        while (waiting := self._waiting) is not None:
            self._waiting = None
            self.runs += 1
            if waiting.count > 1:
                log.info("reload: %d requests served by one reload", waiting.count)
            try:
                outcome = await self._run(waiting.force)
            except asyncio.CancelledError:  # the server stops
                waiting.future.cancel()
                raise
            except Exception as exc:  # its requesters learn of it; the next run still runs
                log.exception("reload failed")
                waiting.future.set_exception(exc)
            else:
                waiting.future.set_result(outcome)

    async def _run(self, force: bool) -> ReloadOutcome:
        server = self.server
        if server.config_path is None:
            return self.apply(None, force=force)
        _call(server.on_reload_start)
        running = server.config
        switches = dict(server.service.switches)  # the thread's snapshot
        try:
            config, prepared = await asyncio.to_thread(_read, server.config_path, running, switches)
        except ConfigError as invalid:
            return self._record(_invalid(invalid, force))
        except OSError as unreadable:
            return self._record(_unreadable(server.config_path, unreadable, force))
        outcome = self._apply(config, force, prepared, settle=False)
        if outcome.report is not None and server.heap_frozen:
            await asyncio.sleep(0)  # the IVRs get a turn between the apply and the collection
            server.settle_heap()
        return self._record(outcome)

    # ------------------------------------------------------------------ applying

    def apply(self, config: ServerConfig | None, *, force: bool = False) -> ReloadOutcome:
        """Apply ``config`` (re-read from the file, on the loop, when ``None``) at once, and
        record the outcome (:attr:`IvrServer.on_reload`)."""
        return self._record(self._apply(config, force))

    def _record(self, outcome: ReloadOutcome) -> ReloadOutcome:
        on_reload = self.server.on_reload
        if on_reload is not None:
            try:
                on_reload(outcome)
            except Exception:  # a status file that cannot be written must not undo the reload
                log.exception("reload: the outcome could not be recorded")
        return outcome

    def _apply(
        self,
        config: ServerConfig | None,
        force: bool,
        prepared: PreparedReload | None = None,
        *,
        settle: bool = True,
    ) -> ReloadOutcome:
        server = self.server
        if config is None:
            if server.config_path is None:
                message = "running on the built-in default configuration; nothing to re-read"
                log.warning("reload: %s", message)
                return ReloadOutcome("no-file", message, force=force)
            try:
                config = load_config(server.config_path)
            except ConfigError as invalid:
                return _invalid(invalid, force)
            except OSError as unreadable:
                return _unreadable(server.config_path, unreadable, force)
        try:
            report = server.service.reload(
                config, force=force, now=asyncio.get_running_loop().time(), prepared=prepared
            )
        except ReloadRefused as refused:
            message = (
                f"{refused}; the running configuration stays (to apply it anyway: "
                "ivr-server reload --force, SIGUSR2, or POST /api/v1/reload with "
                '{"force": true})'
            )
            log.error("reload refused: %s", message)
            return ReloadOutcome("refused", message, stranded=refused.stranded, force=force)
        stranded = report.stranded
        message = f"configuration reloaded: {report.describe()}"
        if stranded:
            log.warning(
                "configuration reloaded by force, after ending %s (EndCall Timeout to their IVR, "
                "ports freed)",
                describe_stranded(stranded),
            )
        server.take_config(config, settle=settle)
        return ReloadOutcome("applied", message, report=report, stranded=stranded, force=force)


def _read(
    path: str, running: ServerConfig, switches: dict[str, Switch]
) -> tuple[ServerConfig, PreparedReload]:
    """The worker thread's part: the file loaded and checked, what it changes against the
    running configuration and its ports' index (each O(ports); the configurations are
    immutable, ``switches`` a copy)."""
    config = load_config(path)
    return config, prepare_reload(running, config, switches)


def _call(hook: object) -> None:
    """Run an optional hook of the server; a failure is logged, never raised."""
    if callable(hook):
        try:
            hook()
        except Exception:
            log.exception("reload: the start could not be recorded")


def _invalid(error: ConfigError, force: bool) -> ReloadOutcome:
    """A reload refused because the configuration does not load."""
    log.error("reload refused, the running configuration stays: %s", error)
    return ReloadOutcome(
        "invalid", str(error), problems=tuple(str(p) for p in error.problems), force=force
    )


def _unreadable(path: str, error: OSError, force: bool) -> ReloadOutcome:
    """A reload refused because the file cannot be read."""
    message = f"cannot read {path}: {error}"
    log.error("reload refused, %s", message)
    return ReloadOutcome("invalid", message, problems=(message,), force=force)
