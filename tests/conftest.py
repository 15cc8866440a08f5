"""
Shared fixtures: a fresh CA and a fresh server certificate for every test.
"""

from __future__ import annotations

import pytest
import trustme

# Fixtures shared by several test modules live beside the helpers they use.
pytest_plugins = ["tests.peers", "tests.reactors"]


@pytest.fixture
def ca() -> trustme.CA:
    """
    A new certificate authority, made for this test only.
    """
    return trustme.CA()
