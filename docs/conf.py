"""
Sphinx configuration for the txtlsreload documentation.

Builds offline: references to Twisted, pyOpenSSL and cryptography become
links by URL rules (see C{_ext/apidocs.py}) instead of through intersphinx,
whose inventories would have to be downloaded.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "txtlsreload"
author = "The txtlsreload developers"
copyright = "2026, The txtlsreload developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.extlinks", "myst_parser", "apidocs"]
exclude_patterns = ["_build", "examples", "_ext"]
html_theme = "alabaster"

# The constructors' @param fields are in __init__'s docstring.
autoclass_content = "both"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_default_options = {"members": True}

# For prose that names another project's API page.
extlinks = {
    "twisted": ("https://docs.twisted.org/en/stable/api/%s.html", "%s"),
    "pyopenssl": ("https://www.pyopenssl.org/en/stable/api/%s", "%s"),
    "cryptography": ("https://cryptography.io/en/latest/%s", "%s"),
}

# The changelog is Markdown (docs/changelog.rst includes it); its headings
# get anchors so that sections can be linked.
myst_heading_anchors = 2
