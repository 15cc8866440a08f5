# -*- test-case-name: tests.test_store -*-
"""
Which certificate each server name gets: the name table and its rules.

A handshake costs one or two dict lookups here (the exact name, then the
wildcard one label up); everything else (validity periods, several
certificates for one name, RSA beside ECDSA) is decided when the table is
built, at a reload or when a validity period starts or ends.

Rules, per name:
  - among the certificates that are valid now, the one with the latest
    notAfter, separately per key type, so that a name with an RSA and an
    ECDSA certificate gets both in one context and OpenSSL picks, per
    client, the one it supports;
  - a certificate whose notBefore is in the future is held back until then;
  - an expired certificate only if nothing for the name is valid (the
    latest-expiring one, with a warning).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from twisted.logger import Logger

from ._loading import Credentials

__all__ = ["Candidate", "NameTable", "Selection", "Selector", "normalName"]

_log = Logger()


def normalName(name: str) -> str:
    """
    A DNS name as the table keys it: lower case, no trailing dot.  (IP
    addresses come from L{CertificateInfo.subjectAltNames} in their
    canonical form already.)
    """
    return name.strip().rstrip(".").lower()


def _keyKind(credentials: Credentials) -> str:
    return type(credentials.privateKey).__name__.lstrip("_")


@dataclass(frozen=True, eq=False)
class Candidate:
    """
    One certificate with its key and chain, found in the files, that may
    serve the names in its subjectAltNames.

    @ivar credentials: The parsed, checked certificate, key and chain.
    @ivar source: The file that holds the certificate, for messages.
    @ivar names: The DNS names and IP addresses it serves, normalized.
    @ivar keyKind: The type of its key; one certificate per kind is chosen.
    """

    credentials: Credentials
    source: str
    names: tuple[str, ...]
    keyKind: str

    @classmethod
    def of(cls, credentials: Credentials, source: str) -> Candidate:
        """
        Describe C{credentials}, found in C{source}.
        """
        names = []
        for san in credentials.info.subjectAltNames:
            kind, _, value = san.partition(":")
            if kind == "DNS":
                names.append(normalName(value))
            elif kind == "IP":
                names.append(value)
        return cls(
            credentials, source, tuple(dict.fromkeys(names)), _keyKind(credentials)
        )


@dataclass(frozen=True, eq=False)
class Selection:
    """
    What one name serves: one candidate per key kind.  Shared by every name
    that chose the same candidates, so that they share a built context.

    @ivar expired: Nothing valid was there; these are expired.
    """

    candidates: tuple[Candidate, ...]
    expired: bool = False

    def __repr__(self) -> str:
        sources = ", ".join(c.source for c in self.candidates)
        return f"<Selection {sources}>"

    @property
    def credentials(self) -> tuple[Credentials, ...]:
        """
        The credentials to build a context from.
        """
        return tuple(c.credentials for c in self.candidates)


def _choose(
    candidates: Iterable[Candidate], now: datetime
) -> tuple[tuple[Candidate, ...], bool]:
    valid: dict[str, Candidate] = {}
    expired: dict[str, Candidate] = {}
    for candidate in candidates:
        info = candidate.credentials.info
        if info.notBefore > now:
            continue
        into = valid if now <= info.notAfter else expired
        best = into.get(candidate.keyKind)
        if best is None or info.notAfter > best.credentials.info.notAfter:
            into[candidate.keyKind] = candidate
    if valid:
        chosen, isExpired = valid, False
    else:
        chosen, isExpired = expired, True
    # ECDSA first: with both, it is the one OpenSSL offers where it can.
    ordered = sorted(
        chosen.values(), key=lambda c: (not c.keyKind.startswith("Elliptic"), c.keyKind)
    )
    return tuple(ordered), isExpired and bool(ordered)


class NameTable:
    """
    An immutable map from server names to selections, with the default for
    clients without SNI or naming an unknown host.
    """

    def __init__(
        self,
        exact: dict[str, Selection],
        default: Selection | None,
        refuseUnknown: bool,
    ) -> None:
        self.exact = exact
        self.default = default
        self.refuseUnknown = refuseUnknown

    def __len__(self) -> int:
        return len(self.exact)

    def lookup(self, serverName: bytes | None) -> Selection | None:
        """
        The selection for C{serverName} as sent by a client: exact, then a
        wildcard one label deep; else the default, or L{None} to refuse.
        """
        if serverName:
            name = serverName.decode("latin-1").lower().rstrip(".")
            exact = self.exact
            found = exact.get(name)
            if found is not None:
                return found
            _, dot, parent = name.partition(".")
            if dot:
                found = exact.get("*." + parent)
                if found is not None:
                    return found
        if self.refuseUnknown:
            return None
        return self.default


@dataclass(frozen=True)
class TableChange:
    """
    Which names an update added, replaced and removed.
    """

    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


class Selector:
    """
    Keeps every candidate by name and rebuilds, incrementally, the exact-name
    map of a L{NameTable}: only names whose candidates changed, or whose
    candidates' validity periods started or ended, are chosen again.
    """

    def __init__(self) -> None:
        self._byName: dict[str, list[Candidate]] = {}
        self._candidates: set[Candidate] = set()
        self.exact: dict[str, Selection] = {}
        self._evaluatedAt: datetime | None = None
        # Validity starts and ends still to come, soonest first; entries of
        # removed candidates are skipped when they come up.
        self._boundaries: list[tuple[datetime, int, Candidate]] = []

    def update(
        self, added: Iterable[Candidate], removed: Iterable[Candidate], now: datetime
    ) -> TableChange:
        """
        Add and remove candidates, choose again for the names they touch and
        for names whose validity boundaries passed since the last update.
        """
        touched: set[str] = set()
        for candidate in removed:
            self._candidates.discard(candidate)
            for name in candidate.names:
                others = self._byName.get(name)
                if others is not None and candidate in others:
                    others.remove(candidate)
                    if not others:
                        del self._byName[name]
                touched.add(name)
        for candidate in added:
            self._candidates.add(candidate)
            info = candidate.credentials.info
            for moment in (info.notBefore, info.notAfter):
                if moment > now:
                    heapq.heappush(self._boundaries, (moment, id(candidate), candidate))
            for name in candidate.names:
                self._byName.setdefault(name, []).append(candidate)
                touched.add(name)
        touched.update(self._crossedBoundaries(now))
        self._evaluatedAt = now
        return self._reselect(touched, now)

    def nextBoundary(self, now: datetime) -> datetime | None:
        """
        The next time a candidate's validity starts or ends, when the
        choice may change without any file changing.
        """
        boundaries = self._boundaries
        while boundaries and boundaries[0][2] not in self._candidates:
            heapq.heappop(boundaries)
        return boundaries[0][0] if boundaries else None

    def _crossedBoundaries(self, now: datetime) -> set[str]:
        names: set[str] = set()
        boundaries = self._boundaries
        while boundaries and boundaries[0][0] <= now:
            _, _, candidate = heapq.heappop(boundaries)
            if candidate in self._candidates:
                names.update(candidate.names)
        return names

    def _reselect(self, names: set[str], now: datetime) -> TableChange:
        old = self.exact
        new = dict(old)
        reuse: dict[tuple[Candidate, ...], Selection] = {}
        added, replaced, removed = [], [], []
        for name in sorted(names):
            chosen, isExpired = _choose(self._byName.get(name, ()), now)
            before = old.get(name)
            if not chosen:
                if before is not None:
                    del new[name]
                    removed.append(name)
                continue
            selection = reuse.get(chosen)
            if selection is None:
                selection = self._existing(chosen, isExpired, old)
                reuse[chosen] = selection
                if isExpired:
                    _log.warn(
                        "Serving {source} for {name} although it expired on"
                        " {notAfter}: nothing valid for it was found",
                        source=chosen[0].source,
                        name=name,
                        notAfter=chosen[0].credentials.info.notAfter.isoformat(),
                    )
            new[name] = selection
            if before is None:
                added.append(name)
            elif before is not selection:
                replaced.append(name)
        self.exact = new
        return TableChange(tuple(added), tuple(replaced), tuple(removed))

    @staticmethod
    def _existing(
        chosen: tuple[Candidate, ...], isExpired: bool, old: dict[str, Selection]
    ) -> Selection:
        # A name that had these same candidates keeps its selection object,
        # and with it any context already built for it.
        for name in chosen[0].names:
            previous = old.get(name)
            if (
                previous is not None
                and previous.candidates == chosen
                and previous.expired == isExpired
            ):
                return previous
        return Selection(chosen, isExpired)
