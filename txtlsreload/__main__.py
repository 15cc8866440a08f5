"""
C{python -m txtlsreload check ...}: see L{txtlsreload._check}.
"""

import sys

from ._check import main

sys.exit(main())
