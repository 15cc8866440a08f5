# -*- test-case-name: tests.test_loading -*-
"""
The one exception txtlsreload raises for bad input.
"""

from __future__ import annotations

__all__ = ["CredentialError"]


class CredentialError(Exception):
    """
    A certificate, key, chain or CA file could not be used.

    The message always names the file and the reason, and never contains key
    material, so it is safe to log and to show to an operator.

    @ivar path: The file that was refused.
    @ivar reason: Why it was refused, as a short sentence fragment.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"
