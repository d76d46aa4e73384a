"""The protective breaker's rule: the complaint rate of marketing, judged against two thresholds.

Gmail and Yahoo throttle, then refuse, bulk senders whose user-reported spam rate reaches
0.3 %, and Gmail asks senders to stay below 0.1 % (STANDARDS.md 12). mailpulse watches its own
rate, so that it stops before the providers stop it: complaints about marketing over marketing
messages sent, in a window (24 hours, the providers' day). Reaching `alert` raises an alert;
reaching `pause` trips the breaker, which holds marketing until an operator resumes it (see
mailpulse.runtime.breaker). Transactional mail is neither counted nor held.

Below `min_sends` sends in the window the rate is not judged: a handful of complaints in a
small send says more about chance than about the list. With the default 2,000, a sender whose
true rate is the 0.1 % Gmail asks for trips by chance about once in 60 windows (6 complaints
or more where 2 are expected, Poisson); at 1,000 sends it would be once in 12.

Counts are kept per bucket of `BUCKET` seconds (by the folds, see mailpulse.runtime.fold), so
the window is as exact as a bucket.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Any

from mailpulse.policy.suppression import COMPLAINT_TYPES, feedback_kind

BUCKET = 600.0  # seconds a count covers

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_percent(text: object) -> Fraction:
    """A share written as a percentage ("0.1%") as an exact fraction. Raises ValueError."""
    m = _PERCENT.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"write a percentage, e.g. '0.3%', not {text!r}")
    share = Fraction(m.group(1)) / 100
    if not 0 < share <= 1:
        raise ValueError(f"a share is more than 0 % and at most 100 %, not {text!r}")
    return share


def format_percent(share: Fraction | float) -> str:
    """A share as a percentage with as many decimals as it needs, up to four: "0.3%"."""
    text = f"{float(share) * 100:.4f}".rstrip("0").rstrip(".")
    return f"{text}%"


@dataclass(frozen=True)
class BreakerSettings:
    """`[breaker]` in mailpulse.toml, checked (see mailpulse.project)."""

    alert: Fraction = Fraction(1, 1000)
    pause: Fraction = Fraction(3, 1000)
    window: float = 86400.0
    min_sends: int = 2000


@dataclass(frozen=True)
class Figures:
    """Marketing sends and complaints counted from `since` to `at`."""

    sends: int
    complaints: int
    since: float
    at: float

    @property
    def rate(self) -> Fraction | None:
        return Fraction(self.complaints, self.sends) if self.sends else None

    def describe(self) -> str:
        rate = self.rate
        shown = "no rate" if rate is None else format_percent(rate)
        return (
            f"{shown}: {counted(self.complaints, 'complaint')} about "
            f"{counted(self.sends, 'marketing message')} sent in the last "
            f"{_hours(self.at - self.since)}"
        )


def counted(n: int, what: str) -> str:
    """How many of `what`: "1 complaint", "2,000 marketing messages"."""
    return f"{n:,} {what}" + ("" if n == 1 else "s")


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    if hours >= 1:
        return f"{hours:.1f} h".replace(".0 h", " h")
    return f"{max(1, math.ceil(seconds / 60))} min"


class Level(StrEnum):
    UNJUDGED = "unjudged"  # too few sends to tell
    CLEAR = "clear"
    ALERT = "alert"
    PAUSE = "pause"


def judge(figures: Figures, settings: BreakerSettings) -> Level:
    """Where the rate stands. Exact: 3 complaints in 1,000 sends reach 0.3 %."""
    rate = figures.rate
    if rate is None or figures.sends < settings.min_sends:
        return Level.UNJUDGED
    if rate >= settings.pause:
        return Level.PAUSE
    if rate >= settings.alert:
        return Level.ALERT
    return Level.CLEAR


def counts_as_complaint(properties: dict[str, Any]) -> bool:
    """Whether an `Email Complained` counts against the rate: its feedback type says a person
    called the mail unwanted (an opt-out report is an unsubscribe; not-spam and auth-failure
    reports are no complaints). Like sends, only complaints about marketing are counted."""
    return feedback_kind(properties) in COMPLAINT_TYPES


def bucket_of(at: float) -> float:
    """The start of the bucket `at` is counted in."""
    return math.floor(at / BUCKET) * BUCKET
