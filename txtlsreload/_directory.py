# -*- test-case-name: tests.test_store -*-
"""
Finding certificates in a directory tree, and reading again only what
changed.

Three layouts are recognised, anywhere under the directory, all at once:
  - Kubernetes TLS Secret volumes: a directory holding C{tls.crt} and
    C{tls.key}.  The C{..data} symlink and the timestamped C{..2026_...}
    directories behind it are the volume's internals: names starting with
    C{..} are never entered, so nothing is found twice.
  - certbot: a directory holding C{fullchain.pem} and C{privkey.pem}
    (symlinks into C{archive/}, repointed at renewal).  In a directory
    holding both C{live} and C{archive} (C{/etc/letsencrypt}) only C{live}
    is entered: C{archive}, C{keys} and C{csr} hold old keys, certificates
    and requests.
  - Twisted's C{tls:} endpoint: every other C{*.pem} file, holding
    certificates and keys in any arrangement; keys are matched to
    certificates by public key, and chains are built by issuer name.
Names starting with C{.} are skipped everywhere (editor and tool temporary
files).

Every reload looks at every file, but cheaply: a file whose C{stat}
(device, inode, size, modification and change times, after symlinks) did
not change is not read; one whose bytes hash as before is not parsed.
Files are looked at relative to a descriptor of their directory (no walk of
the whole path for each), and a directory is listed again only when its own
modification time changed.  At 10,000 files that is about 35 ms of CPU here
(a third of it listing a flat directory after one file in it was replaced),
spread over reactor iterations by L{txtlsreload._steps}.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import PublicKeyAlgorithmOID

from ._errors import CredentialError, escapeControls
from ._limits import keySizeProblem
from ._loading import (
    CertificateInfo,
    CredentialFiles,
    Credentials,
    _certificateIn,
    _pemBlocks,
    _privateKeyIn,
    _proveKeyWorks,
    _spki,
    parseCredentialFiles,
    readCredentialFiles,
    readFile,
)
from ._selection import Candidate
from ._steps import drain

__all__ = ["DirectoryReader", "ScanResult", "refuseUnservable"]

_PAIRS = (("tls.crt", "tls.key"), ("fullchain.pem", "privkey.pem"))
_CERTIFICATE_LABELS = (b"CERTIFICATE", b"X509 CERTIFICATE")
# Deep enough for any real chain, short enough to stop an issuer loop.
_MAX_CHAIN = 10

_Stat = tuple[int, int, int, int, int]

# Entries or files looked at between two yields of a stepped reload: a
# millisecond or two of stat calls.
STEP = 200


def _openDirectory(path: str) -> int | None:
    """
    A descriptor for C{path} to C{stat} its files relative to, or L{None}
    (then they are looked at by path) if it cannot be opened.
    """
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def _stat(path: str) -> _Stat | None:
    try:
        s = os.stat(path)
    except OSError:
        return None
    return (s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)


@dataclass(frozen=True)
class _Listing:
    """
    What one directory held, and when that was read.
    """

    identity: tuple[int, int, int]
    listedAt: int
    pair: tuple[str, str] | None
    loose: LooseFiles | None
    subdirectories: tuple[str, ...]


@dataclass(frozen=True)
class LooseFiles:
    """
    The loose C{*.pem} files of one directory, by name (for C{stat} relative
    to the directory, which skips resolving the whole path again for each
    file) and by path.
    """

    directory: str
    names: tuple[str, ...]
    paths: tuple[str, ...]


_Found = tuple[list[tuple[str, str]], list[LooseFiles], list[str]]


# A directory's listing is reused while its modification time is unchanged
# and was already this old when the listing was read: modification times
# are coarse, so a change made just after a listing could leave it as it was.
_SETTLED_NS = 1_000_000_000


def scanSteps(
    root: str, listings: dict[str, _Listing]
) -> Generator[None, None, _Found]:
    """
    Walk C{root}, yielding every L{STEP} entries.

    @param listings: What the previous walk listed, by directory; updated.
        A directory whose modification time did not change is not listed
        again: adding, removing or renaming an entry changes it (the files'
        own changes are found by looking at each file).
    @return: The certificate and key file pairs (Kubernetes, certbot), the
        loose C{*.pem} files, and every directory entered.
    @raise CredentialError: If C{root} cannot be listed.
    """
    pairs: list[tuple[str, str]] = []
    loose: list[LooseFiles] = []
    directories: list[str] = []
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            status = os.stat(directory)
            # Symlinked directories can form loops; enter each one once.
            if (status.st_dev, status.st_ino) in seen:
                continue
            seen.add((status.st_dev, status.st_ino))
            identity = (status.st_dev, status.st_ino, status.st_mtime_ns)
            listing = listings.get(directory)
            if listing is None or listing.identity != identity:
                listing = yield from _list(directory, identity)
                listings[directory] = listing
        except OSError as e:
            if directory == root:
                raise CredentialError(
                    root, f"cannot list the directory: {e.strerror or e}"
                ) from None
            listings.pop(directory, None)
            continue
        if listing.listedAt - identity[2] < _SETTLED_NS:
            # Too fresh to trust next time: list it again then.
            listings.pop(directory, None)
        directories.append(directory)
        if listing.pair is not None:
            pairs.append(listing.pair)
        if listing.loose is not None:
            loose.append(listing.loose)
        stack.extend(reversed(listing.subdirectories))
    return pairs, loose, directories


def _list(
    directory: str, identity: tuple[int, int, int]
) -> Generator[None, None, _Listing]:
    listedAt = time.time_ns()
    names: set[str] = set()
    loose: list[str] = []
    subdirectories: list[str] = []
    # One pass, on names and the entry types the listing already carries
    # (no system call per entry, except for symlinks): a directory of
    # 10,000 files is listed in a few milliseconds.
    with os.scandir(directory) as listing:
        for number, entry in enumerate(listing, start=1):
            if number % STEP == 0:
                yield
            name = entry.name
            names.add(name)
            if name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    subdirectories.append(name)
                elif name.endswith(".pem") and entry.is_file():
                    loose.append(name)
            except OSError:
                continue
    pair = next(((c, k) for c, k in _PAIRS if c in names and k in names), None)
    if pair is not None:
        paths = (os.path.join(directory, pair[0]), os.path.join(directory, pair[1]))
        return _Listing(identity, listedAt, paths, None, ())
    if "live" in names and "archive" in names:
        # certbot's root: only live/ holds what is served.
        loose, subdirectories = [], [n for n in subdirectories if n == "live"]
    loose.sort()
    subdirectories.sort()
    prefix = os.path.join(directory, "")
    return _Listing(
        identity,
        listedAt,
        None,
        LooseFiles(directory, tuple(loose), tuple(prefix + n for n in loose))
        if loose
        else None,
        tuple(prefix + n for n in subdirectories),
    )


@dataclass(eq=False)
class _Parsed:
    """
    A file (or certificate and key pair) as last read successfully.
    """

    stat: object
    digest: bytes
    candidates: tuple[Candidate, ...] = ()
    certificates: tuple[_Certificate, ...] = ()
    keys: tuple[tuple[bytes, object], ...] = ()


@dataclass(frozen=True, eq=False)
class _Certificate:
    """
    A loose certificate with what matching it needs, worked out once when
    its file is parsed rather than at every reload.
    """

    parsed: x509.Certificate
    spki: bytes
    subject: bytes
    issuer: bytes
    info: CertificateInfo
    #: Not a CA, and has DNS names or IP addresses: a site's certificate,
    #: which needs its key (a CA's does not).
    servesNames: bool

    @classmethod
    def of(cls, path: str, number: int, pem: bytes) -> _Certificate:
        """
        Read PEM block C{number} of C{path}.

        @raise CredentialError: If it is a site's certificate whose key is
            too small or too large to serve.
        """
        # Attributes are read from a second copy, dropped afterwards: the
        # kept object would otherwise carry its parsed names and key (about
        # 2 KiB) for as long as it is served.
        scratch = x509.load_pem_x509_certificate(pem)
        info = CertificateInfo._fromScratchCopy(scratch)
        try:
            isCA = scratch.extensions.get_extension_for_class(
                x509.BasicConstraints
            ).value.ca
        except x509.ExtensionNotFound:
            isCA = False
        servesNames = not isCA and any(
            san.startswith(("DNS:", "IP:")) for san in info.subjectAltNames
        )
        publicKey = scratch.public_key()
        if servesNames:
            problem = keySizeProblem(publicKey, servable=True)
            if problem is not None:
                raise CredentialError(path, f"PEM block {number}: {problem}")
        return cls(
            x509.load_pem_x509_certificate(pem),
            _spki(publicKey),
            scratch.subject.public_bytes(),
            scratch.issuer.public_bytes(),
            info,
            servesNames,
        )


@dataclass
class ScanResult:
    """
    What one look at the directory found, as a change to what the previous
    look found.

    @ivar added: Candidates found now that were not before.
    @ivar removed: Candidates found before that are gone; a file that was
        refused keeps what it held when it was last good.
    @ivar refused: The files that could not be used this time.
    @ivar parsed: How many files (or pairs) were parsed, not just looked at.
    @ivar paths: Every file and directory looked at.
    @ivar directories: Every directory entered, the root first.
    @ivar keyless: At the first look, the files holding a site's
        certificate with no private key in the directory: left out, as
        Twisted's C{tls:} does (later, such a change is refused).
    """

    added: set[Candidate] = field(default_factory=set)
    removed: set[Candidate] = field(default_factory=set)
    refused: list[CredentialError] = field(default_factory=list)
    parsed: int = 0
    paths: list[str] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    keyless: list[str] = field(default_factory=list)


class DirectoryReader:
    """
    Reads a directory tree into candidates, remembering what it read so that
    the next look parses only what changed, and matches again only the keys
    and certificates that changed.

    @ivar candidates: Every candidate found by the latest look.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.candidates: set[Candidate] = set()
        self._pairs: dict[tuple[str, str], _Parsed] = {}
        self._loose: dict[str, _Parsed] = {}
        self._listings: dict[str, _Listing] = {}
        # What the loose files hold, indexed for matching, kept up to date
        # file by file: public key -> keys and certificates; subject ->
        # certificates (for chains).
        self._keys: dict[bytes, dict[int, tuple[str, object]]] = {}
        self._certificates: dict[bytes, dict[int, tuple[str, _Certificate]]] = {}
        self._bySubject: dict[bytes, dict[int, _Certificate]] = {}
        self._bySPKI: dict[bytes, list[Candidate]] = {}
        # Whether a first look was done: only changes to what was served
        # can be refused for leaving a certificate without its key.
        self._settled = False

    def read(self) -> ScanResult:
        """
        Look at every file; parse those whose bytes changed.

        @raise CredentialError: Only if the directory itself cannot be
            listed; refused files are reported in the result.
        """
        return drain(self.steps())

    def steps(self) -> Generator[None, None, ScanResult]:
        """
        L{read}, yielding every L{STEP} files so that a cooperative caller
        can let the reactor run in between; returns the result.
        """
        pairs, loose, directories = yield from scanSteps(self.root, self._listings)
        result = ScanResult(paths=list(directories), directories=directories)
        pairStates: dict[tuple[str, str], _Parsed] = {}
        for number, pair in enumerate(pairs, start=1):
            previous = self._pairs.get(pair)
            state = self._readPair(pair, previous, result)
            if state is not None:
                pairStates[pair] = state
            if state is not previous:
                if previous is not None:
                    result.removed.update(previous.candidates)
                if state is not None:
                    result.added.update(state.candidates)
            result.paths.extend(pair)
            if number % STEP == 0:
                yield
        for pair, gone in self._pairs.items():
            if pair not in pairStates:
                result.removed.update(gone.candidates)
        self._pairs = pairStates

        looseStates: dict[str, _Parsed] = {}
        changed: dict[str, tuple[_Parsed | None, _Parsed | None]] = {}
        previousStates = self._loose
        previousState = previousStates.get
        looked = 0
        for group in loose:
            directory = _openDirectory(group.directory)
            # By name relative to the directory; by path if it did not open.
            targets = group.paths if directory is None else group.names
            try:
                for first in range(0, len(targets), STEP):
                    chunk = slice(first, first + STEP)
                    for target, path in zip(
                        targets[chunk], group.paths[chunk], strict=True
                    ):
                        previous = previousState(path)
                        if previous is not None:
                            # The common case, inline: 10,000 per reload.
                            try:
                                found = os.stat(target, dir_fd=directory)
                            except OSError:
                                pass
                            else:
                                if previous.stat == (
                                    found.st_dev,
                                    found.st_ino,
                                    found.st_size,
                                    found.st_mtime_ns,
                                    found.st_ctime_ns,
                                ):
                                    looseStates[path] = previous
                                    continue
                        state = self._readLoose(path, previous, result)
                        if state is not None:
                            looseStates[path] = state
                        if state is not previous:
                            changed[path] = (previous, state)
                    looked += len(targets[chunk])
                    if looked >= STEP:
                        looked = 0
                        yield
            finally:
                if directory is not None:
                    os.close(directory)
            result.paths.extend(group.paths)
        for path, gone in self._loose.items():
            if path not in looseStates:
                changed[path] = (gone, None)
        self._loose = looseStates
        if changed:
            self._match(changed, result)
        self.candidates.difference_update(result.removed)
        self.candidates.update(result.added)
        self._settled = True
        return result

    def _readPair(
        self, pair: tuple[str, str], previous: _Parsed | None, result: ScanResult
    ) -> _Parsed | None:
        stat = (_stat(pair[0]), _stat(pair[1]))
        if previous is not None and stat == previous.stat and None not in stat:
            return previous
        try:
            files = CredentialFiles(certificateFile=pair[0], privateKeyFile=pair[1])
            read = readCredentialFiles(files)
            if previous is not None and read.digest == previous.digest:
                previous.stat = stat
                return previous
            result.parsed += 1
            credentials = parseCredentialFiles(read)
            _checkStrength(pair[1], credentials.privateKey)
            refuseUnservable(pair[0], credentials.leaf)
        except CredentialError as e:
            result.refused.append(e.with_traceback(None))
            return previous
        return _Parsed(stat, read.digest, (Candidate.of(credentials, pair[0]),))

    def _readLoose(
        self, path: str, previous: _Parsed | None, result: ScanResult
    ) -> _Parsed | None:
        stat = _stat(path)
        if previous is not None and stat == previous.stat and stat is not None:
            return previous
        try:
            data = readFile(path)
            digest = hashlib.sha256(data).digest()
            if previous is not None and digest == previous.digest:
                previous.stat = stat
                return previous
            result.parsed += 1
            certificates, keys = _parseLoose(path, data)
        except CredentialError as e:
            result.refused.append(e.with_traceback(None))
            return previous
        return _Parsed(stat, digest, certificates=certificates, keys=keys)

    def _match(
        self,
        changed: dict[str, tuple[_Parsed | None, _Parsed | None]],
        result: ScanResult,
    ) -> None:
        """
        Update the indexes with the changed loose files, then pair keys with
        certificates again for the public keys they touch.

        A changed certificate without a key (an intermediate or a CA) can
        change the chain of any leaf: then every public key is matched
        again.  Unchanged pairs keep their candidate object either way, and
        with it any context already built for it.
        """
        touched: set[bytes] = set()
        # A certificate without a key, before or after: an intermediate.
        chainChanged = any(
            c.spki not in self._keys
            for old, _ in changed.values()
            if old is not None
            for c in old.certificates
        )
        for path, (old, new) in changed.items():
            self._apply(path, old, new, touched)
        if self._settled:
            self._refuseHalfDone(changed, result, touched)
        else:
            result.keyless = sorted(
                path
                for path, (_, new) in changed.items()
                if new is not None
                and any(
                    c.servesNames and c.spki not in self._keys for c in new.certificates
                )
            )
        chainChanged = chainChanged or any(
            c.spki not in self._keys
            for _, new in changed.values()
            if new is not None
            for c in new.certificates
        )
        if chainChanged:
            touched = set(self._certificates) | set(self._bySPKI)
        for spki in touched:
            before = self._bySPKI.pop(spki, [])
            after = self._candidatesFor(spki, before, result)
            if after:
                self._bySPKI[spki] = after
            result.removed.update(c for c in before if c not in after)
            result.added.update(c for c in after if c not in before)

    def _apply(
        self,
        path: str,
        old: _Parsed | None,
        new: _Parsed | None,
        touched: set[bytes],
    ) -> None:
        """
        Replace what C{path} held, C{old}, by C{new} in the indexes.
        """
        for state, adding in ((old, False), (new, True)):
            if state is None:
                continue
            for spki, key in state.keys:
                _index(self._keys, spki, id(key), (path, key), adding)
                touched.add(spki)
            for certificate in state.certificates:
                _index(
                    self._certificates,
                    certificate.spki,
                    id(certificate),
                    (path, certificate),
                    adding,
                )
                _index(
                    self._bySubject,
                    certificate.subject,
                    id(certificate),
                    certificate,
                    adding,
                )
                touched.add(certificate.spki)

    def _refuseHalfDone(
        self,
        changed: dict[str, tuple[_Parsed | None, _Parsed | None]],
        result: ScanResult,
        touched: set[bytes],
    ) -> None:
        """
        Refuse the changes that would leave a site's certificate without its
        key: a new certificate written before its key, a new key written
        before its certificate (the old certificate loses its key), or a key
        deleted while its certificate stays.  Serving such a change would
        drop the certificate's names, and their clients would get another
        site's certificate; refused, the files keep what they held when they
        were last good, and the next reload (a watcher retries) takes the
        rotation once both halves are there.

        Refusing one file can leave another without its other half (a
        certificate and a key that do not match, both new): it repeats
        until nothing more is refused.
        """
        while True:
            culprits: dict[str, str] = {}
            for path, (old, new) in changed.items():
                if new is old:
                    continue
                if new is not None and any(
                    c.servesNames and c.spki not in self._keys for c in new.certificates
                ):
                    culprits[path] = (
                        "no private key in the directory matches this"
                        " certificate (is its key still to be written?)"
                    )
                    continue
                if old is None:
                    continue
                for spki, _ in old.keys:
                    orphaned = [
                        certPath
                        for certPath, c in self._certificates.get(spki, {}).values()
                        if c.servesNames
                    ]
                    if spki not in self._keys and orphaned:
                        culprits[path] = (
                            "it held the private key of the certificate in"
                            f" {escapeControls(orphaned[0])}, which is still"
                            " there (is the certificate still to be written?)"
                        )
                        break
            if not culprits:
                return
            for path, reason in culprits.items():
                old, new = changed[path]
                self._apply(path, new, old, touched)
                changed[path] = (old, old)
                if old is None:
                    self._loose.pop(path, None)
                else:
                    self._loose[path] = old
                result.refused.append(CredentialError(path, reason))

    def _candidatesFor(
        self, spki: bytes, before: list[Candidate], result: ScanResult
    ) -> list[Candidate]:
        keys = self._keys.get(spki)
        certificates = self._certificates.get(spki)
        if not keys or not certificates:
            return []
        keyPath, key = next(iter(keys.values()))
        reusable = {
            (id(c.credentials.leaf), id(c.credentials.privateKey)): c for c in before
        }
        candidates = []
        for certPath, leaf in certificates.values():
            chain = tuple(self._chainOf(leaf))
            candidate = reusable.get((id(leaf.parsed), id(key)))
            if candidate is not None and candidate.credentials.chain == chain:
                candidates.append(candidate)
                continue
            try:
                refuseUnservable(certPath, leaf.parsed)
                _checkKey(keyPath, key, leaf)
            except CredentialError as e:
                result.refused.append(e.with_traceback(None))
                continue
            credentials = Credentials(
                leaf=leaf.parsed,
                privateKey=key,  # type: ignore[arg-type]
                chain=chain,
                clientCAs=(),
                digest=b"",
                info=leaf.info,
            )
            candidates.append(Candidate.of(credentials, certPath))
        return candidates

    def _chainOf(self, leaf: _Certificate) -> Iterator[x509.Certificate]:
        subject, issuerName = leaf.subject, leaf.issuer
        for _ in range(_MAX_CHAIN):
            if issuerName == subject:
                return
            issuer = next(
                (
                    c
                    for c in self._bySubject.get(issuerName, {}).values()
                    if c.spki not in self._keys
                ),
                None,
            )
            # A self-signed root is left out: clients must already have it.
            if issuer is None or issuer.issuer == issuer.subject:
                return
            yield issuer.parsed
            subject, issuerName = issuer.subject, issuer.issuer


def _index(
    index: dict[bytes, dict[int, Any]],
    key: bytes,
    identity: int,
    value: object,
    adding: bool,
) -> None:
    if adding:
        index.setdefault(key, {})[identity] = value
    else:
        entries = index.get(key)
        if entries is not None:
            entries.pop(identity, None)
            if not entries:
                del index[key]


def _checkStrength(path: str, key: object) -> None:
    """
    Refuse a key OpenSSL would refuse when building the context: contexts
    are built on a name's first handshake, too late to refuse the file.
    """
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise CredentialError(
            path,
            f"RSA key of {key.key_size} bits: OpenSSL refuses keys under 2048"
            " bits at its default security level",
        )


def refuseUnservable(path: str, leaf: x509.Certificate) -> None:
    """
    Refuse a certificate that passes every other check but that OpenSSL
    will not put in a context: one for an RSA-PSS key (id-RSASSA-PSS),
    which cryptography reads as RSA.  A store's contexts are built on a
    name's first handshake, too late to refuse the file.

    @raise CredentialError: Naming C{path}.
    """
    if leaf.public_key_algorithm_oid == PublicKeyAlgorithmOID.RSASSA_PSS:
        raise CredentialError(
            path,
            "an RSA-PSS key (id-RSASSA-PSS): OpenSSL does not serve TLS with"
            " one; issue the certificate for a plain RSA or an ECDSA key",
        )


def _checkKey(path: str, key: object, leaf: _Certificate) -> None:
    """
    Prove the private half of C{key} belongs to C{leaf}, whose public key
    matches (that is how they were paired), and that OpenSSL will take it.
    """
    _checkStrength(path, key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        # Nothing more to prove: cryptography refuses, when loading, an EC
        # key whose private value does not give its public point, and that
        # point is the certificate's (they were paired by it).
        return
    # A copy, to keep the served object lean.
    scratch = x509.load_der_x509_certificate(leaf.parsed.public_bytes(Encoding.DER))
    _proveKeyWorks(path, key, scratch)  # type: ignore[arg-type]


def _parseLoose(
    path: str, data: bytes
) -> tuple[tuple[_Certificate, ...], tuple[tuple[bytes, object], ...]]:
    certificates = []
    keys = []
    for number, (label, block) in enumerate(_pemBlocks(path, data), start=1):
        if label in _CERTIFICATE_LABELS:
            # The checks every certificate gets (version, key type and size,
            # malformed fields, readable by OpenSSL, which builds the
            # contexts later): refused here with the same words.  Its parsed
            # certificate is not kept: reading its key and converting it for
            # OpenSSL grow the object (10,000 of them: +19 MiB).
            _certificateIn(path, number, block)
            certificates.append(_Certificate.of(path, number, block))
        elif b"PRIVATE KEY" in label:
            key = _privateKeyIn(path, block, None)
            keys.append((_spki(key.public_key()), key))
    return tuple(certificates), tuple(keys)
