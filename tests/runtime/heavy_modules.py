"""Which heavy modules a fresh interpreter loads to build a part: each one a process loads
without using it is memory spent for nothing (asyncpg 3.7 MB, dnspython 3.4 MB in a courier
and ~5 MB in the server, numpy 12 MB)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "shop"
HEAVY = ("asyncpg", "dns", "numpy")


def heavy_modules_after(build: str, *args: str) -> set[str]:
    """The heavy modules loaded once `build` (Python, with `args` as sys.argv[1:]) has run."""
    script = f"import sys\n{build}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())
