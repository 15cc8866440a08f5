"""
Start coverage in every Python process the tests start, when the run asks
for it (C{COVERAGE_PROCESS_START}; see C{tests/conftest.py}).

The test run puts this directory on C{PYTHONPATH}, so child processes
(twistd, twist, the example programs) import it at start-up; coverage's
C{sigterm} setting saves their data when the test ends them with SIGTERM.

twistd replaces that handler with the reactor's, and after a clean shutdown
ends itself with the same signal at its default action (Twisted's
C{_exitWithSignal}: C{signal.SIG_DFL}, then C{os.kill} of its own pid), so
no exit handler runs and nothing it ran would be recorded.  Hence
L{_killSavingCoverage}: a process about to kill itself with a signal it no
longer handles saves its data first.
"""

import os

if os.environ.get("COVERAGE_PROCESS_START"):
    import signal

    import coverage

    coverage.process_startup()

    _kill = os.kill

    def _killSavingCoverage(pid: int, sig: int) -> None:
        if pid == os.getpid() and signal.getsignal(sig) == signal.SIG_DFL:
            current = coverage.Coverage.current()
            if current is not None:
                current.stop()
                current.save()
        _kill(pid, sig)

    os.kill = _killSavingCoverage
