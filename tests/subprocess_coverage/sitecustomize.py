"""
Start coverage in every Python process the tests start, when the run asks
for it (C{COVERAGE_PROCESS_START}; see C{tests/conftest.py}).

The test run puts this directory on C{PYTHONPATH}, so child processes
(twistd, twist, the example programs) import it at start-up; coverage's
C{sigterm} setting saves their data when the test ends them with SIGTERM.
"""

import os

if os.environ.get("COVERAGE_PROCESS_START"):
    import coverage

    coverage.process_startup()
