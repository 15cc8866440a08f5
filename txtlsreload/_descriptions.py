# -*- test-case-name: tests.test_endpoint,tests.test_client_endpoint -*-
"""
The values of C{tlsreload:} endpoint descriptions, as typed values.

The server and the client description share their vocabulary (yes/no
switches, seconds, ports, file names), so they share the reading of it here,
and with it one wording for what is wrong: every error is a L{ValueError}
starting with C{tlsreload: }, naming the key and the value refused, so that a
mistake in a long description can be found without reading our code.
"""

from __future__ import annotations

import math
import os

__all__ = ["PREFIX", "path", "portNumber", "problem", "seconds", "text", "yesNo"]

# The endpoint type, as descriptions name it and as errors start.
PREFIX = "tlsreload"

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
        raise problem(f"port must be a number from {lowest} to 65535, not {value!r}")
    return port


def yesNo(key: str, value: str) -> bool:
    """
    A switch, in any of the usual spellings of true and false.
    """
    if value.lower() in _YES:
        return True
    if value.lower() in _NO:
        return False
    raise problem(f"{key} must be yes or no, not {value!r}")


def seconds(key: str, value: str | float, zeroMeans: str | None = "off") -> float:
    """
    A finite, non-negative number of seconds.

    Endpoint constructors check their arguments with this too, so that a bad
    value given in Python fails where it is given, as one in a description
    does, and not later when a timer is started with it.

    @param value: The description's text, or a number given in Python.
    @param zeroMeans: What 0 does (such as C{"off"}), or L{None} if 0 is
        refused because it would mean nothing sensible.
    """
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0 or (number == 0 and not zeroMeans):
        detail = (
            "more than 0" if zeroMeans is None else f"0 or more; 0 turns it {zeroMeans}"
        )
        raise problem(f"{key} must be a number of seconds ({detail}), not {value!r}")
    return number


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
