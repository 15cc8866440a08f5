"""
Shared fixtures: a fresh CA and a fresh server certificate for every test.
"""

from __future__ import annotations

import pytest
import trustme


@pytest.fixture
def ca() -> trustme.CA:
    """
    A new certificate authority, made for this test only.
    """
    return trustme.CA()
