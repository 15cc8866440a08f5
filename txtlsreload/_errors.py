# -*- test-case-name: tests.test_loading,tests.test_secrets -*-
"""
The one exception txtlsreload raises for bad input, and the two rules every
message built from outside text follows.

Certificate subjects and names, file names and description values come from
whoever wrote the files or the command line.  Written raw into a log line or
an error they can forge log lines (a newline), drive the operator's terminal
(an escape sequence) or turn text around (a bidi override); at a megabyte
they bury the message.  So every such piece goes through L{escapeControls}
(or L{quoted}, which also cuts it short) before it reaches a message.
"""

from __future__ import annotations

import re

__all__ = ["MAX_SHOWN", "CredentialError", "escapeControls", "quoted", "shortened"]

# How much of an outside value a message shows; enough to recognise it.
MAX_SHOWN = 100

# C0 controls, DEL, C1 controls, and the Unicode format characters that
# reorder or hide text (bidi embeddings, overrides and isolates, marks,
# zero-width characters, the line and paragraph separators).
_CONTROLS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)


# As repr() writes them, so that a value reads the same quoted or not.
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    if character in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[character]
    code = ord(character)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escapeControls(text: str) -> str:
    """
    C{text} with every control and text-direction character written as
    C{repr} writes it (a newline as C{\\n}, ESC as C{\\x1b}, U+202E as
    C{\\u202e}), so that it shows as one inert line wherever it is printed.
    """
    return _CONTROLS.sub(_escape, text)


def shortened(text: str, limit: int = MAX_SHOWN) -> str:
    """
    C{text} escaped (see L{escapeControls}) and, if long, cut to C{limit}
    characters followed by its full length.
    """
    shown = escapeControls(text)
    if len(shown) <= limit:
        return shown
    return f"{shown[:limit]}... ({len(text)} characters)"


def quoted(value: object, limit: int = MAX_SHOWN) -> str:
    """
    C{value} as a message shows a value the user gave: C{repr}-quoted (which
    escapes control characters), and cut to about C{limit} characters with
    its full length said, so that a huge value cannot bury the message.
    """
    shown = escapeControls(repr(value))
    if len(shown) <= limit:
        return shown
    if isinstance(value, bytes):
        return f"{shown[:limit]}... ({len(value)} bytes)"
    length = len(value) if isinstance(value, str) else len(shown)
    return f"{shown[:limit]}... ({length} characters)"


class CredentialError(Exception):
    """
    A certificate, key, chain or CA file could not be used.

    The message always names the file and the reason, and never contains key
    material, so it is safe to log and to show to an operator; control
    characters in either are escaped (see L{escapeControls}).

    @ivar path: The file that was refused, as given.
    @ivar reason: Why it was refused, as a short sentence fragment.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{escapeControls(self.path)}: {escapeControls(self.reason)}"
