"""Outbound dialling, sans-IO: DialOut registrations and predictive-call requests."""

from __future__ import annotations

from ivr_server.outbound.dialout import (
    DIAL_OUT_ERRORS,
    DialOutManager,
    DialOutOutcome,
    DialOutRequest,
)

__all__ = ["DIAL_OUT_ERRORS", "DialOutManager", "DialOutOutcome", "DialOutRequest"]
