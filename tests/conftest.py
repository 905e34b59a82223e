"""
Suite-wide fixtures.  Every test fails if it leaves an unhandled error in a Deferred or in a
reactor callback: those are bugs the test would otherwise hide.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from twisted.logger import globalLogPublisher

FIXTURES = Path(__file__).resolve().parent / "fixtures"  # copied from shared/fixtures
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_unhandled_errors():
    """
    Fail the test when an unhandled error is logged while it runs (including Deferreds
    garbage-collected with a failure at the end of the test).
    """
    seen: list[dict] = []

    def observe(event: dict) -> None:
        if "log_failure" in event and "nhandled" in (event.get("log_format") or ""):
            seen.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        yield
        gc.collect()
    finally:
        globalLogPublisher.removeObserver(observe)
    if seen:
        failures = "\n\n".join(e["log_failure"].getTraceback() for e in seen)
        pytest.fail(f"{len(seen)} unhandled error(s) logged:\n{failures}")
