# -*- test-case-name: tests.test_check -*-
"""
C{python -m txtlsreload check}: validate TLS files offline, exactly as a
reload would, before telling a server to reload them.

It builds the very objects a server or client builds (a
L{ReloadingContextFactory} from C{--cert}/C{--key} or a C{tlsreload:}
description, or L{ReloadingClientCredentials} from a client description),
so every check a reload makes is made, down to building the OpenSSL
context, and a refusal reads as the reload's log line would.

Exit status: 0 when the files are good, 1 when a reload would refuse them
(or the command line is wrong), 2 when they are good but the certificate
expires within C{--warn-days}.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, NoReturn

from ._errors import CredentialError, escapeControls
from ._loading import CertificateInfo, utcNow

if TYPE_CHECKING:
    from ._factory import ReloadingContextFactory

__all__ = ["EXIT_EXPIRING", "EXIT_OK", "EXIT_REFUSED", "main"]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_EXPIRING = 2

_SECONDS_PER_DAY = 86400


class _Parser(argparse.ArgumentParser):
    """
    argparse, but a usage error exits 1 (the files were not found good)
    rather than 2, which means "expiring soon" here.
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_REFUSED, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m txtlsreload",
        description="Tools for txtlsreload, hitless TLS certificate rotation.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check",
        help="validate TLS files exactly as a reload would",
        description=(
            "Validate a certificate, key, chain and client-CA bundle exactly as"
            " a reload would, without a running server. Exit status: 0 good,"
            " 1 refused, 2 good but expiring within --warn-days."
        ),
    )
    check.add_argument(
        "description",
        nargs="?",
        help="a tlsreload: server or client endpoint description",
    )
    check.add_argument("--cert", help="PEM certificate file (leaf first)")
    check.add_argument("--key", help="PEM private key [default: the --cert file]")
    check.add_argument("--chain", help="PEM file with more chain certificates")
    check.add_argument("--client-ca", help="PEM bundle of client CAs")
    check.add_argument("--passphrase-file", help="first line decrypts the key")
    check.add_argument(
        "--warn-days",
        type=float,
        default=None,
        metavar="N",
        help="exit 2 if the certificate expires within N days",
    )
    check.add_argument(
        "--json", action="store_true", help="print one JSON object instead"
    )
    return parser


def _load(arguments: argparse.Namespace) -> tuple[str, CertificateInfo | None, str]:
    """
    Build what a server or client would from the arguments.

    @return: The file that names it, its leaf certificate (L{None} for
        client credentials without one) and what it trusts, for the report.
    @raise CredentialError: As a reload would.
    @raise ValueError: If the description or options are wrong.
    """
    from ._client import ReloadingClientCredentials
    from ._clientendpoint import ReloadingClientEndpoint
    from ._endpoint import ReloadingServerEndpoint
    from ._factory import ReloadingContextFactory
    from ._store import ReloadingCertificateStore

    description: str | None = arguments.description
    if description is None:
        if arguments.cert is None:
            raise ValueError("give a tlsreload: description or --cert")
        single = ReloadingContextFactory(
            arguments.cert,
            arguments.key,
            extraChainFile=arguments.chain,
            clientCAFile=arguments.client_ca,
            passphraseFile=arguments.passphrase_file,
        )
        return single.files.certificateFile, single.certificate, _trusts(single)
    given = [arguments.cert, arguments.key, arguments.chain, arguments.client_ca]
    if any(option is not None for option in [*given, arguments.passphrase_file]):
        raise ValueError("give a description or file options, not both")
    if not description.lower().startswith("tlsreload:"):
        raise ValueError(f"not a tlsreload: description: {description!r}")

    from twisted.internet import reactor

    from ._clientendpoint import parseClientEndpoint
    from ._endpoint import TLSReloadParser

    # Our own parsers, not serverFromString: that finds them through
    # Twisted's plugin scan, which an editable install can hide.  Parsing
    # reads and checks every file and builds the context; triggers (SIGHUP,
    # watching) start only when a server listens or a client connects,
    # which never happens here.
    args, kwargs = _split(description.split(":", 1)[1])
    if "host" in kwargs:
        client = parseClientEndpoint(reactor, *args, **kwargs)
        assert isinstance(client, ReloadingClientEndpoint)
        credentials = client.contextFactory.credentials
        assert isinstance(credentials, ReloadingClientCredentials)
        path = (
            credentials.clientFiles.certificateFile
            if credentials.clientFiles is not None
            else credentials.caCertsFile or "<platform trust store>"
        )
        trusted = credentials.trustedCAs
        trusts = (
            "the platform trust store"
            if trusted is None
            else f"{trusted} CA certificate(s) from {credentials.caCertsFile}"
        )
        return path, credentials.clientCertificate, trusts
    server = TLSReloadParser().parseStreamServer(reactor, *args, **kwargs)
    assert isinstance(server, ReloadingServerEndpoint)
    factory = server.contextFactory
    if isinstance(factory, ReloadingCertificateStore):
        # Every file under the directory was read and checked; the default
        # certificate stands for them.  A site's certificate without its key
        # is only left out at start-up, but a reload refuses it while it is
        # new (a rotation half done): so does check.
        if factory._keyless:
            raise CredentialError(
                factory._keyless[0],
                "no private key in the directory matches this certificate"
                " (is its key still to be written?)",
            )
        asked = (
            f"client CAs from {factory.clientCAFile}"
            if factory.clientCAFile is not None
            else "no client certificates asked for"
        )
        return (
            factory.directory,
            factory.certificate,
            f"{len(factory.names)} name(s) served; {asked}",
        )
    return factory.files.certificateFile, factory.certificate, _trusts(factory)


def _split(description: str) -> tuple[list[str], dict[str, str]]:
    """
    Split an endpoint description's arguments as Twisted does: at colons
    not escaped with a backslash, then C{key=value} at the first C{=}.
    """
    parts: list[str] = [""]
    escaped = False
    for character in description:
        if escaped:
            parts[-1] += character
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == ":":
            parts.append("")
        else:
            parts[-1] += character
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for part in parts:
        key, equals, value = part.partition("=")
        if equals:
            kwargs[key] = value
        else:
            args.append(part)
    return args, kwargs


def _trusts(factory: ReloadingContextFactory) -> str:
    count = len(factory.clientCAs)
    if not count:
        return "no client certificates asked for"
    return f"{count} client CA(s) from {factory.files.clientCAFile}"


def _describe(info: CertificateInfo, daysLeft: int) -> str:
    names = ", ".join(info.subjectAltNames) or "no SANs"
    return (
        f"{info.subject} ({names}), serial {info.serialHex},"
        f" notAfter {info.notAfter.isoformat()}, {daysLeft} day(s) left"
    )


def _certificateJSON(info: CertificateInfo, secondsLeft: float) -> dict[str, Any]:
    return {
        "subject": info.subject,
        "subjectAltNames": list(info.subjectAltNames),
        "serial": info.serialHex,
        "fingerprintSHA256": info.fingerprintSHA256,
        "notBefore": info.notBefore.isoformat(),
        "notAfter": info.notAfter.isoformat(),
        "secondsLeft": round(secondsLeft, 3),
        "daysLeft": math.floor(secondsLeft / _SECONDS_PER_DAY),
    }


def main(
    argv: Sequence[str] | None = None,
    out: IO[str] | None = None,
    now: Callable[[], datetime] = utcNow,
) -> int:
    """
    Run the command line C{argv} (by default the process's), printing to
    C{out} (standard output).

    @return: The exit status.
    """
    out = sys.stdout if out is None else out
    arguments = _parser().parse_args(argv)
    report: dict[str, Any]
    try:
        path, leaf, trusts = _load(arguments)
    except CredentialError as e:
        report = {"status": "refused", "path": e.path, "reason": e.reason}
        line = f"refused: {e}"
        status = EXIT_REFUSED
    except ValueError as e:
        report = {"status": "refused", "path": None, "reason": str(e)}
        line = f"refused: {e}"
        status = EXIT_REFUSED
    else:
        report = {"status": "ok", "path": path, "trusts": trusts, "certificate": None}
        status = EXIT_OK
        shown = escapeControls(path)
        if leaf is None:
            line = (
                f"ok: {shown}: no client certificate; trusting {escapeControls(trusts)}"
            )
        else:
            secondsLeft = (leaf.notAfter - now()).total_seconds()
            daysLeft = math.floor(secondsLeft / _SECONDS_PER_DAY)
            report["certificate"] = _certificateJSON(leaf, secondsLeft)
            line = f"ok: {shown}: {_describe(leaf, daysLeft)}"
            warnDays = arguments.warn_days
            if warnDays is not None and secondsLeft < warnDays * _SECONDS_PER_DAY:
                report["status"] = "expiring"
                line = f"expiring: {shown}: {_describe(leaf, daysLeft)}"
                status = EXIT_EXPIRING
    if arguments.json:
        out.write(json.dumps(report, sort_keys=True) + "\n")
    else:
        out.write(line + "\n")
    return status
