# -*- test-case-name: tests.test_endpoint,tests.test_client_endpoint -*-
"""
The values of C{tlsreload:} endpoint descriptions, as typed values.

The server and the client description share their vocabulary (yes/no
switches, seconds, ports, file names), so they share the reading of it here,
and with it one wording for what is wrong: every error is a L{ValueError}
starting with C{tlsreload: }, naming the key and the value refused, so that a
mistake in a long description can be found without reading our code.  Values
are shown through L{quoted <txtlsreload._errors.quoted>}: escaped, and cut
short when long, since a description can carry anything.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence

from ._errors import quoted

__all__ = [
    "MINIMUM_PERIOD",
    "PREFIX",
    "address",
    "path",
    "period",
    "portNumber",
    "problem",
    "refuseEmptyPositional",
    "seconds",
    "text",
    "yesNo",
]

# The endpoint type, as descriptions name it and as errors start.
PREFIX = "tlsreload"

# The shortest time between two looks at the files (watch=) or two forced
# reloads (interval=).  Each look reads every file and may log; at a
# thousandth of a second that is a busy loop that floods the log, and no
# rotation needs faster pickup than this (inotify, where available, reports
# changes sooner anyway).
MINIMUM_PERIOD = 0.1

# What is left of an IPv6 address before its first colon: nothing, a
# bracket, or one group of hex digits.
_IPV6_PIECE = re.compile(r"[0-9A-Fa-f]{1,4}")
_IPV6_START = re.compile(r"\[?[0-9A-Fa-f]{0,4}")

_YES = frozenset({"yes", "true", "on", "1"})
_NO = frozenset({"no", "false", "off", "0"})


def problem(message: str) -> ValueError:
    """
    The error for a wrong description, saying which endpoint type it is for.

    @param message: What is wrong, naming the key.
    """
    return ValueError(f"{PREFIX}: {message}")


def text(value: object) -> str:
    """
    Accept the values of a description given as bytes, as
    L{serverFromString <twisted.internet.endpoints.serverFromString>} and
    L{clientFromString <twisted.internet.endpoints.clientFromString>} do.
    """
    if isinstance(value, bytes):
        return os.fsdecode(value)
    return str(value)


def portNumber(value: str, lowest: int) -> int:
    """
    A TCP port number.

    @param lowest: 0 where it means "any free port" (listening), 1 where
        there is no such thing (connecting).
    """
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not lowest <= port <= 65535:
        raise problem(
            f"port must be a number from {lowest} to 65535, not {quoted(value)}"
        )
    return port


def yesNo(key: str, value: str) -> bool:
    """
    A switch, in any of the usual spellings of true and false.
    """
    if value.lower() in _YES:
        return True
    if value.lower() in _NO:
        return False
    raise problem(f"{key} must be yes or no, not {quoted(value)}")


def _number(value: str | float) -> float:
    """
    C{value} as a number, NaN if it is none, so that one check refuses both.
    """
    try:
        return float(value)
    except ValueError:
        return math.nan


def seconds(key: str, value: str) -> float:
    """
    A time limit: a finite number of seconds, more than 0.
    """
    number = _number(value)
    if not (math.isfinite(number) and number > 0):
        raise problem(
            f"{key} must be a number of seconds (more than 0), not {quoted(value)}"
        )
    return number


def period(key: str, value: str | float) -> float:
    """
    The period of a repeating timer: 0 for none, or at least
    L{MINIMUM_PERIOD} seconds.

    Endpoint constructors check their C{watch} and C{interval} arguments with
    this too, so that a bad value given in Python fails where it is given, as
    one in a description does, and not later when a timer is started with it.

    @param value: The description's text, or a number given in Python.
    """
    number = _number(value)
    if not (math.isfinite(number) and (number == 0 or number >= MINIMUM_PERIOD)):
        raise problem(
            f"{key} must be 0 (off) or at least {MINIMUM_PERIOD:g} seconds,"
            f" not {quoted(value)}"
        )
    return number


def address(value: str) -> str:
    """
    A network address, with the brackets of the URL spelling of an IPv6
    address (C{[\\:\\:1]}) removed, since people copy addresses from URLs.
    """
    if value.startswith("[") and value.endswith("]"):
        return value[1:-1]
    return value


def refuseEmptyPositional(
    positional: Sequence[str],
    options: Mapping[str, object],
    addressKeys: Sequence[str],
    keyless: int = 1,
) -> None:
    """
    Refuse the shapes an unescaped colon leaves in a description.

    Twisted splits descriptions at every colon, so C{interface=::1} arrives
    as C{interface=""} followed by the values C{""} and C{"1"}.  Left to the
    later checks, that reads as a stray value or a key given twice, which
    sends the user looking in the wrong place; an empty value between two
    colons is never meant, so it is reported as what it almost always is.

    @param positional: The values given without a key.
    @param options: The values given with a key.
    @param addressKeys: The keys that take addresses, most likely first; the
        message's example uses the one that looks cut short, or else the
        first the description has.
    @param keyless: How many values may rightly be given without a key (the
        server's port; the client's host and port).
    """
    given = [key for key in addressKeys if key in options]
    # The key whose value looks like the start of a cut IPv6 address, if any.
    cut = [key for key in given if _IPV6_START.fullmatch(text(options[key]))]
    if "" not in positional:
        # interface=0:0:0:0:0:0:0:1 leaves no empty value, only stray pieces.
        stray = positional[keyless:]
        if cut and stray and all(_IPV6_PIECE.fullmatch(value) for value in stray):
            raise problem(
                f"unexpected value {quoted(stray[0])} after {cut[0]}=; colons"
                " inside a value (as in an IPv6 address) must be escaped as \\:,"
                f" as in {cut[0]}=0\\:0\\:0\\:0\\:0\\:0\\:0\\:1"
            )
        return
    # A client's host given without host= that is empty: "tlsreload:::1:443".
    hostCut = keyless > 1 and positional[:1] == [""]
    if not cut and not hostCut:
        # Nothing looks like a cut address: two colons in a row, or one at
        # the end (the parser cannot tell which).
        raise problem(
            "empty value: two colons in a row, or a colon at the end; colons"
            " inside a value must be escaped as \\:"
        )
    key = (cut or given or addressKeys)[0]
    raise problem(
        "empty value between two colons; colons inside a value (as in an IPv6"
        f" address) must be escaped as \\:, as in {key}=\\:\\:1"
    )


def path(key: str, value: str | None) -> str | None:
    """
    Make a file name absolute now: reloads happen later, possibly after the
    process changed directory (C{twistd} without C{-n} moves to its run
    directory), and must read the same file.

    @return: The absolute file name, or L{None} if the key was not given.
    """
    if value is None:
        return None
    if not value:
        raise problem(f"{key} is empty; give a file name")
    return os.path.abspath(value)
