"""Fixtures shared by the recipe checks (``nox -s check-recipes``)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The recipe checks import the repo's own tools (f7tbuild, recipes.locks,
# tests.support.launch) from the checkout, whatever directory pytest runs from.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
