# -*- test-case-name: tests.test_hostile_files -*-
"""
Refused file contents, remembered so that they are not parsed again.

A watcher retries a refused reload for as long as the files stay as they
are, and parsing a large bad file can take a noticeable part of a second
of reactor time on every retry.  Whether bytes parse and belong together
depends on the bytes alone, so the refusal is remembered by the digest of
what was read and repeated without parsing until the bytes change.

Refusals that depend on the time or on what is being served (a
certificate not valid yet, or expired while the one served is still
valid) are L{ValidityRefusal}s; they are never remembered, so that a
certificate becomes acceptable as soon as its validity period starts.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from ._errors import CredentialError

__all__ = ["RefusedContents", "ValidityRefusal"]

T = TypeVar("T")


class ValidityRefusal(CredentialError):
    """
    A refusal that may not hold later for the same bytes: the certificate
    is not valid at this moment.
    """


class RefusedContents:
    """
    The last few refusals of file contents, by digest.

    A few, not one, so that files flipping between two bad versions (a
    half-done rotation retried while another file changes) are not parsed
    again either.
    """

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._refusals: OrderedDict[bytes, tuple[str, str]] = OrderedDict()

    def attempt(self, digest: bytes, work: Callable[[], T]) -> T:
        """
        Run C{work} on the contents identified by C{digest}, unless they were
        refused before: then refuse them again, the same way, without
        running it.

        @raise CredentialError: What C{work} raised, now or earlier.
        """
        refused = self._refusals.get(digest)
        if refused is not None:
            self._refusals.move_to_end(digest)
            # A new exception each time: raising a stored one again would
            # grow its traceback on every retry, forever.
            raise CredentialError(*refused)
        try:
            return work()
        except ValidityRefusal:
            raise
        except CredentialError as e:
            self._refusals[digest] = (e.path, e.reason)
            if len(self._refusals) > self._size:
                self._refusals.popitem(last=False)
            raise
