"""
Sphinx configuration for the txtlsreload documentation.
"""

project = "txtlsreload"
author = "The txtlsreload developers"
copyright = "2026, The txtlsreload developers"
extensions: list[str] = []
exclude_patterns = ["_build", "examples"]
html_theme = "alabaster"
