"""Values people write in project files, parsed once into types.

Durations are written like `90s`, `15m`, `1h`, `7d`, `2w` or combined (`1h30m`); rates like
`100/s`, `6000/m`, `50000/h` or `200000/d`.
"""

from __future__ import annotations

import math
import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_RATE = re.compile(r"(\d+(?:\.\d+)?)/(s|m|h|d)")


def parse_duration(text: str | int | float) -> float:
    """Seconds in a duration like `1h30m`; a bare number is seconds. Raises ValueError."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        # An endless one (YAML .inf, .nan) would be stored as a timer nobody can read back.
        if not math.isfinite(text):
            raise ValueError(f"a duration is a finite number of seconds, not {text!r}")
        if text < 0:
            raise ValueError(f"a duration cannot be negative: {text!r}")
        return float(text)
    s = str(text).strip().lower().replace(" ", "")
    if not s:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise ValueError(f"not a duration: {text!r} (write e.g. '30s', '15m', '1h30m', '7d', '2w')")
    return total


def format_duration(seconds: float) -> str:
    """The shortest `parse_duration` spelling of whole seconds (round-trips)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out, rest = [], round(seconds)
    for unit in ("w", "d", "h", "m", "s"):
        size = int(_UNIT_SECONDS[unit])
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"


def parse_rate(text: str) -> float:
    """Messages per second in a rate like `100/s`, `6000/m` or `50000/h`. Raises ValueError."""
    m = _RATE.fullmatch(text.strip().lower().replace(" ", ""))
    if m is None:
        raise ValueError(f"not a rate: {text!r} (write e.g. '100/s', '6000/m', '50000/h')")
    rate = float(m.group(1)) / _UNIT_SECONDS[m.group(2)]
    if rate <= 0:
        raise ValueError(f"a rate must be more than 0: {text!r}")
    return rate
