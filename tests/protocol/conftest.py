"""Make this directory's helper modules importable under any ``--import-mode``.

pytest's importlib mode does not put test directories on ``sys.path``; the helpers here have
names no other test directory uses, so adding this one is safe.
"""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
