"""
Shared fixtures: a fresh CA for every test, and the log events a test emits.

With C{COVERAGE_PROCESS_START} set (as CI does), coverage is started here,
before any test imports txtlsreload, and in every Python process the tests
start (through C{tests/subprocess_coverage/sitecustomize.py}), all writing
to one data file at the top of the tree for C{coverage combine}.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def _startCoverage() -> None:
    if not os.environ.get("COVERAGE_PROCESS_START"):
        return
    root = Path(__file__).parent.parent
    # Children run in other directories; an absolute data file keeps their
    # data next to ours.
    os.environ.setdefault("COVERAGE_FILE", str(root / ".coverage"))
    startup = str(Path(__file__).parent / "subprocess_coverage")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [startup, os.environ.get("PYTHONPATH")])
    )
    import coverage

    coverage.process_startup()


_startCoverage()

import pytest  # noqa: E402
import trustme  # noqa: E402
from twisted.logger import LogEvent, capturedLogs  # noqa: E402

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
