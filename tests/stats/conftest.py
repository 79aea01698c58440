"""Fixtures of the stats tests; makes this directory's helper module importable.

pytest's importlib mode does not put test directories on ``sys.path``; ``stats_kit`` is a name
no other test directory uses, so adding this one is safe.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
