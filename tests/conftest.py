"""
Shared fixtures: a fresh CA for every test, and the log events a test emits.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trustme
from twisted.logger import LogEvent, capturedLogs

# Fixtures shared by several test modules live beside the helpers they use.
pytest_plugins = ["tests.peers", "tests.processes", "tests.reactors"]


@pytest.fixture
def ca() -> trustme.CA:
    """
    A new certificate authority, made for this test only.
    """
    return trustme.CA()


@pytest.fixture
def logEvents() -> Iterator[list[LogEvent]]:
    """
    Every log event emitted during the test.
    """
    with capturedLogs() as events:
        yield events
