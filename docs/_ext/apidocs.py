"""
The API reference, made from the package's own docstrings.

Three jobs, each small:

  - C{.. txtlsreload-api::} documents every name in C{txtlsreload.__all__},
    in that order, so a public name added to C{__all__} appears on the API
    page without anyone editing it.
  - The docstrings are epytext (C{@param}, C{L{...}}, C{C{...}}); autodoc
    reads reStructuredText, so each docstring is converted as it is read.
  - References to Twisted, pyOpenSSL, cryptography and zope.interface become
    links to their documentation by URL rules, since intersphinx inventories
    cannot be fetched where the docs are built (no network in CI).
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective
from zope.interface.interface import InterfaceClass, Method

_FIELD = re.compile(r"^(\s*)@(\w+)(?:\s+([^:]+?))?\s*:\s?(.*)$")
_RENAMED_FIELDS = {
    "param": "param",
    "type": "type",
    "ivar": "ivar",
    "cvar": "cvar",
    "var": "var",
    "return": "return",
    "returns": "return",
    "rtype": "rtype",
    "raise": "raises",
    "raises": "raises",
}
# Inner braces are not nested in our docstrings (C{f(x)} is as deep as they
# go), so one level of matching braces is enough.
_INLINE = re.compile(r"([LCIBU])\{((?:[^{}]|\{[^{}]*\})*)\}")


def _inline(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        kind, body = match.group(1), match.group(2)
        if kind == "L":
            return f":py:obj:`{body}`"
        if kind == "C":
            return f"``{body}``"
        if kind == "I":
            return f"*{body}*"
        if kind == "B":
            return f"**{body}**"
        return f"`{body} <{body}>`__"

    return _INLINE.sub(replace, text)


def epytextToRest(lines: list[str], owner: object = None) -> list[str]:
    """
    Convert epytext fields and inline markup to reStructuredText.

    @param lines: The docstring's lines, indentation already removed.
    @param owner: The class being documented, if any: its annotations give
        the types of its C{@ivar} fields.
    @return: The converted lines.
    """
    converted: list[str] = []
    # Added after every field: a field's text may go on over more lines.
    types: list[str] = []
    annotations = getattr(owner, "__annotations__", {}) if owner else {}
    for line in lines:
        match = _FIELD.match(line)
        if match is None:
            converted.append(_inline(line))
            continue
        indent, field, argument, text = match.groups()
        text = _inline(text)
        if field == "see":
            converted.append(f"{indent}.. seealso:: {text}")
            continue
        if field == "note":
            converted.append(f"{indent}.. note:: {text}")
            continue
        name = _RENAMED_FIELDS.get(field, field)
        head = f":{name} {argument}:" if argument else f":{name}:"
        converted.append(f"{indent}{head} {text}".rstrip())
        if field == "ivar" and argument in annotations:
            annotation = annotations[argument]
            types.append(f"{indent}:vartype {argument}: {annotation}")
    return converted + types


def _processDocstring(
    app: Sphinx, what: str, name: str, obj: object, options: Any, lines: list[str]
) -> None:
    lines[:] = epytextToRest(lines, obj if inspect.isclass(obj) else None)


def _dataDocumentation(name: str) -> list[str]:
    """
    The C{#:} comment above C{name} in the private module that defines it.
    """
    package = importlib.import_module("txtlsreload")
    for moduleName in sorted(
        m for m in vars(package) if m.startswith("_") and not m.startswith("__")
    ):
        module = getattr(package, moduleName)
        if not inspect.ismodule(module):
            continue
        documented = ModuleAnalyzer.for_module(module.__name__).find_attr_docs()
        if ("", name) in documented:
            return list(documented[("", name)])
    return []


def _indented(lines: list[str], by: str = "   ") -> list[str]:
    return [by + line if line.strip() else "" for line in lines]


def _docLines(doc: str | None) -> list[str]:
    return epytextToRest(inspect.cleandoc(doc or "").splitlines())


def _interface(name: str, interface: InterfaceClass) -> list[str]:
    """
    Document a zope interface, which autodoc does not recognise as a class.
    """
    out = [f".. py:class:: {name}", "   :module: txtlsreload", ""]
    out += [*_indented(_docLines(interface.__doc__)), ""]
    for member in interface.names():
        description = interface[member]
        if isinstance(description, Method):
            signature = description.getSignatureString()
            out.append(f"   .. py:method:: {member}{signature}")
        else:
            out.append(f"   .. py:attribute:: {member}")
        out.append("")
        out += [*_indented(_docLines(description.getDoc()), "      "), ""]
    return out


def _entry(name: str, obj: object) -> list[str]:
    full = f"txtlsreload.{name}"
    if isinstance(obj, InterfaceClass):
        return _interface(name, obj)
    if inspect.isclass(obj):
        kind = "autoexception" if issubclass(obj, BaseException) else "autoclass"
        return [f".. {kind}:: {full}", "   :members:", ""]
    if inspect.isfunction(obj):
        return [f".. autofunction:: {full}", ""]
    out = [f".. py:data:: {name}", "   :module: txtlsreload", f"   :value: {obj!r}", ""]
    return out + _indented(epytextToRest(_dataDocumentation(name))) + [""]


class PublicAPI(SphinxDirective):
    """
    C{.. txtlsreload-api::}: an entry for every name in
    C{txtlsreload.__all__}.
    """

    def run(self) -> list[nodes.Node]:
        package = importlib.import_module("txtlsreload")
        rest: list[str] = []
        for name in package.__all__:
            rest += _entry(name, getattr(package, name))
        return self.parse_text_to_nodes("\n".join(rest))


# Where each project's API reference lives, for references autodoc and the
# pages make to names outside this package.
def _twistedURL(target: str) -> str:
    base = "https://docs.twisted.org/en/stable/api/"
    try:
        obj: object = importlib.import_module(target)
    except ImportError:
        module, _, attribute = target.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError):
            return base + f"{module}.html#{attribute}"
        if not (inspect.isclass(obj) or isinstance(obj, InterfaceClass)):
            return base + f"{module}.html#{attribute}"
    return base + f"{target}.html"


def _pyOpenSSLURL(target: str) -> str:
    page = "ssl" if target.startswith("OpenSSL.SSL") else "crypto"
    return f"https://www.pyopenssl.org/en/stable/api/{page}.html#{target}"


def _cryptographyURL(target: str) -> str:
    base = "https://cryptography.io/en/latest/"
    parts = target.split(".")
    if parts[1:2] == ["x509"]:
        return f"{base}x509/reference/#{target}"
    if parts[1:4] == ["hazmat", "primitives", "asymmetric"] and len(parts) > 4:
        return f"{base}hazmat/primitives/asymmetric/{parts[4]}/#{target}"
    if parts[1:4] == ["hazmat", "primitives", "serialization"]:
        return f"{base}hazmat/primitives/asymmetric/serialization/#{target}"
    return f"{base}search/?q={parts[-1]}"


EXTERNAL = {
    "twisted": _twistedURL,
    "OpenSSL": _pyOpenSSLURL,
    "cryptography": _cryptographyURL,
    "zope": lambda target: "https://zopeinterface.readthedocs.io/en/latest/api/",
}


def _publicName(target: str) -> str | None:
    """
    The public name of C{target} if it is one of ours under its private
    module's name (as annotations give it), such as
    C{txtlsreload._loading.CertificateInfo}.
    """
    if not target.startswith("txtlsreload._"):
        return None
    name = target.rsplit(".", 1)[-1]
    package = importlib.import_module("txtlsreload")
    return f"txtlsreload.{name}" if name in package.__all__ else None


def _missingReference(
    app: Sphinx, env: Any, node: nodes.Element, contnode: nodes.Element
) -> nodes.Element | None:
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    public = _publicName(target)
    if public is not None:
        domain = env.get_domain("py")
        resolved: nodes.Element | None = domain.resolve_xref(
            env, node["refdoc"], app.builder, node["reftype"], public, node, contnode
        )
        return resolved
    # Short names the annotations leave behind (SSL.Context after
    # "from OpenSSL import SSL") are written out in full first.
    for short, full in (("SSL.", "OpenSSL.SSL."), ("crypto.", "OpenSSL.crypto.")):
        if target.startswith(short):
            target = full + target[len(short) :]
    url = EXTERNAL.get(target.split(".", 1)[0])
    if url is None:
        return None
    reference = nodes.reference("", "", internal=False, refuri=url(target))
    reference.append(contnode)
    return reference


def _interfaceAware(original: Any, asReference: bool) -> Any:
    """
    Wrap Sphinx's annotation formatting so that zope interfaces read as their
    names (C{IProtocol}) instead of their repr (C{<InterfaceClass ...>}).
    """

    def format(annotation: Any, *args: Any, **kwargs: Any) -> str:
        if isinstance(annotation, InterfaceClass):
            full = f"{annotation.__module__}.{annotation.__name__}"
            full = _publicName(full) or full
            return f":py:class:`~{full}`" if asReference else full
        result: str = original(annotation, *args, **kwargs)
        return result

    return format


def _teachInterfaces() -> None:
    import sys

    from sphinx.util import typing as sphinxTyping

    replacements = {
        sphinxTyping.stringify_annotation: _interfaceAware(
            sphinxTyping.stringify_annotation, False
        ),
        sphinxTyping.restify: _interfaceAware(sphinxTyping.restify, True),
    }
    # Sphinx's modules import these functions by name, and the two call
    # themselves recursively, so every binding is replaced.
    for name, module in list(sys.modules.items()):
        if not name.startswith("sphinx") or module is None:
            continue
        for attribute in ("stringify_annotation", "restify"):
            bound = getattr(module, attribute, None)
            if bound in replacements:
                setattr(module, attribute, replacements[bound])


def setup(app: Sphinx) -> dict[str, Any]:
    _teachInterfaces()
    app.connect("autodoc-process-docstring", _processDocstring)
    app.connect("missing-reference", _missingReference)
    app.add_directive("txtlsreload-api", PublicAPI)
    return {"parallel_read_safe": True}
