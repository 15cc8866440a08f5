"""
Apply, one at a time, the hand mutations of the behaviour the suite must
guard (issue 12's list and later ones), run the suite against each, and say
whether it failed (caught) or passed (survived).  The source is restored
after each run.

    .venv/bin/python .ci/mutations.py            # every mutation
    .venv/bin/python .ci/mutations.py M5 M6      # some of them

Not part of the suite: each mutation runs the whole suite (about a minute).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Name: (file, text replaced, replacement).  Each text occurs once.
MUTATIONS: dict[str, tuple[str, str, str]] = {
    "M1": (
        "txtlsreload/_loading.py",
        'f" (subject {quoted(leaf.subject.rfc4514_string())})",',
        'f" (subject {quoted(leaf.subject.rfc4514_string())})"'
        " + read.contents[files.privateKeyFile].splitlines()[1].decode(),",
    ),
    "M2": (
        "txtlsreload/_reloader.py",
        "            result = self._refuse(side.blame(e), current, quietIfRepeated)",
        "            raise",
    ),
    "M3": (
        "txtlsreload/_loading.py",
        "_MAX_FILE_SIZE = 1024 * 1024\n",
        "_MAX_FILE_SIZE = 1024 * 1024 * 1024\n",
    ),
    "M4": (
        "txtlsreload/_reloader.py",
        "    problem = acceptValidity(path, info, inUse, now)\n",
        "    problem = None\n",
    ),
    "M5": (
        "txtlsreload/_serving.py",
        '    "optional": SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE,',
        '    "optional": SSL.VERIFY_NONE,',
    ),
    "M6": (
        "txtlsreload/_serving.py",
        "extraCertChain=list(only.chain)",
        "extraCertChain=[]",
    ),
    "M7": (
        "txtlsreload/_directory.py",
        "        self._settled = True\n        return result",
        "        return result",
    ),
}

#: What each mutation does, for the report.
MEANINGS = {
    "M1": "a refused key's first base64 line in the mismatch message",
    "M2": "a context that cannot be built raises instead of being refused",
    "M3": "the 1 MiB file size limit removed",
    "M4": "certificates not checked for validity",
    "M5": "clientAuth=optional behaves as no client authentication",
    "M6": "chain certificates dropped",
    "M7": "a half-done rotation in a store's directory not refused",
}


def run(name: str) -> bool:
    """
    Apply mutation C{name}, run the suite, restore the file; C{True} if the
    suite failed.
    """
    path, old, new = MUTATIONS[name]
    source = ROOT / path
    original = source.read_text()
    if original.count(old) != 1:
        raise SystemExit(f"{name}: the text to replace is not in {path} once")
    source.write_text(original.replace(old, new))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    finally:
        source.write_text(original)
    return done.returncode != 0


def main(names: list[str]) -> int:
    survived = []
    for name in names or list(MUTATIONS):
        caught = run(name)
        print(f"{name} ({MEANINGS[name]}): {'caught' if caught else 'SURVIVED'}")
        if not caught:
            survived.append(name)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
