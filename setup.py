"""
Build entry for txtlsreload.

The C{twisted.plugins} package is listed explicitly: it has no
C{__init__.py} in our tree (Twisted's own one must stay in charge), so
setuptools would otherwise leave our plugin modules out of the wheel.
"""

from setuptools import setup

with open("README.md", encoding="utf-8") as readme:
    longDescription = readme.read()

setup(
    name="txtlsreload",
    version="0.1.0.dev0",
    description=(
        "Hitless TLS certificate rotation for Twisted: reload certificate, "
        "key, chain and client CAs from disk without a restart."
    ),
    long_description=longDescription,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=["txtlsreload", "twisted.plugins"],
    package_data={"txtlsreload": ["py.typed"]},
    include_package_data=False,
    install_requires=[
        # 26.4: connections get set_app_data(tlsProtocol) and contexts are no
        # longer mutated after a connection was made from them.
        "twisted>=26.4",
        "pyopenssl>=26.2",
        "service-identity>=24.1",
        # Host names as browsers read them (IDNA 2008 + UTS 46).  Twisted
        # already needs it (through hyperlink); we call it directly.
        "idna>=3",
        # 43 bundles OpenSSL 3.3.1, which has the session-cache fixes that
        # sessions=True needs (CVE-2024-2511, fixed in 3.0.14; checked again
        # at run time for builds against another OpenSSL).
        "cryptography>=43",
    ],
    extras_require={
        # Prometheus metrics: txtlsreload.MetricsCollector and /metrics.
        "metrics": ["prometheus-client>=0.20"],
        # Sphinx and myst-parser: tests/test_docs.py builds the docs.  Klein
        # and Twisted's http2 extra: tests/test_recipes.py runs those recipes;
        # Daphne, Klein and treq: the operating how-tos, which tests run.
        "test": [
            "pytest>=8",
            # The suite runs on every core (pyproject's addopts: -n auto).
            "pytest-xdist>=3.5",
            "trustme>=1.2",
            "hypothesis>=6.100",
            "prometheus-client>=0.20",
            "sphinx>=7.4",
            "myst-parser>=3",
            "daphne>=4",
            "klein>=24.8",
            "treq>=23",
            "twisted[http2]>=26.4",
            # Coverage of every process the tests start, in CI (see .ci/run).
            "coverage[toml]>=7.4",
        ],
        # Plots for benchmarks/run.py.
        "bench": ["matplotlib>=3.8", "trustme>=1.2"],
        "dev": [
            "pytest>=8",
            "trustme>=1.2",
            "hypothesis>=6.100",
            "coverage[toml]>=7.4",
            "mypy>=1.10",
            "mypy-zope>=1.0",
            "ruff>=0.6",
            "sphinx>=7.4",
            # The changelog page includes CHANGELOG.md.
            "myst-parser>=3",
            "prometheus-client>=0.20",
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Security :: Cryptography",
        "Typing :: Typed",
    ],
)
